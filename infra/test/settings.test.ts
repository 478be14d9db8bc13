/**
 * Context handling: validation of every value, the Jumio region's address list (the
 * vault's own, src/core/jumio-callback-ips.ts), and the regions other than US end to end.
 */
import { JUMIO_CALLBACK_IPS, JUMIO_REGIONS, readSettings, SettingsError } from '../lib/config';
import { ECR_IMAGE_CONTEXT, resourcesOfType, synthesize, TEST_CONTEXT } from './synth';

const read = (context: Record<string, string>) => readSettings((key) => context[key]);

function problemsOf(context: Record<string, string>): string[] {
  try {
    read(context);
  } catch (error) {
    if (error instanceof SettingsError) return error.problems;
    throw error;
  }
  throw new Error('expected a SettingsError');
}

describe('readSettings', () => {
  test('names every missing required value at once', () => {
    expect(problemsOf({}).map((p) => p.split(':')[0])).toEqual([
      'jumioRegion',
      'jumioUserAgent',
      'certificateArn',
      'vaultPublicUrl',
    ]);
  });

  test('sample=true fills the gaps, and says so', () => {
    const settings = read({ sample: 'true' });
    expect(settings.sample).toBe(true);
    expect(settings.certificateArn).toMatch(/^arn:aws:acm:/);
    expect(read({ ...TEST_CONTEXT }).sample).toBe(false);
  });

  test.each([
    [{ jumioRegion: 'APAC' }, 'jumioRegion: must be one of US, EU, SGP'],
    [{ jumioUserAgent: 'curl' }, 'jumioUserAgent: must look like "Company App/1.2.3"'],
    [
      { certificateArn: 'arn:aws:iam::123456789012:role/x' },
      'certificateArn: must be an ACM certificate ARN',
    ],
    [
      { vaultPublicUrl: 'http://vault.example.com' },
      'vaultPublicUrl: must be an absolute https URL',
    ],
    [{ desiredCount: '1' }, 'desiredCount: must be 0 (bootstrap) or at least 2'],
    [{ logRetentionDays: '42' }, 'logRetentionDays: must be one of'],
    [{ apiAllowedCidrs: '0.0.0.0/0' }, 'apiAllowedCidrs: /0 would open the API to all'],
    [{ jumioCallbackCidrs: '1.2.3.4/33' }, 'jumioCallbackCidrs: 1.2.3.4/33 is not an IPv4 CIDR'],
    [{ jumioCallbackCidrs: '0.0.0.0/0' }, 'jumioCallbackCidrs: /0 would admit everyone'],
    [{ vpcCidr: '10.0.0.0/24' }, 'vpcCidr: must be an IPv4 CIDR from /16 to /20'],
    [{ imageRepository: 'vault' }, 'imageRepository and imageTag: give both or neither'],
    [{ account: '123456789012' }, 'account and region: give both or neither'],
    [{ previousKmsKeyArns: 'alias/old' }, 'previousKmsKeyArns: alias/old is not a KMS key ARN'],
    [{ stackName: 'a_b' }, 'stackName:'],
    [
      { notifyAllowedOrigins: 'http://svc.example' },
      'notifyAllowedOrigins: http://svc.example is not an https origin',
    ],
    [
      { notifyAllowedOrigins: 'https://svc.example/hooks' },
      'notifyAllowedOrigins: https://svc.example/hooks is not an https origin',
    ],
  ])('refuses %j', (override, message) => {
    const problems = problemsOf({ ...TEST_CONTEXT, ...override });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(message);
  });

  test('notifyAllowedOrigins reaches the vault as VAULT_NOTIFY_ALLOWED_ORIGINS', () => {
    const origins = 'https://login.bank.example,https://payments.bank.example:8443';
    expect(read({ ...TEST_CONTEXT, notifyAllowedOrigins: origins }).notifyAllowedOrigins).toEqual(
      origins.split(','),
    );
  });

  test('desiredCount 0 is allowed for the first deploy, before the secrets are filled', () => {
    expect(read({ ...TEST_CONTEXT, desiredCount: '0' }).desiredCount).toBe(0);
    expect(read({ ...TEST_CONTEXT }).desiredCount).toBe(2);
  });

  test.each(JUMIO_REGIONS)('jumioRegion %s admits exactly its published addresses', (region) => {
    const settings = read({ ...TEST_CONTEXT, jumioRegion: region });
    expect(settings.jumioCallbackCidrs).toEqual(JUMIO_CALLBACK_IPS[region].map((ip) => `${ip}/32`));
    expect(settings.jumioCallbackCidrsOverridden).toBe(false);
  });
});

describe('other Jumio regions, synthesized', () => {
  const ingressOf = (context: Record<string, string>) => {
    const { template } = synthesize({ ...ECR_IMAGE_CONTEXT, ...context });
    const groups = resourcesOfType(template, 'AWS::EC2::SecurityGroup');
    const lb = Object.values(
      resourcesOfType(template, 'AWS::ElasticLoadBalancingV2::LoadBalancer'),
    ).find((l) => l.Properties!.Scheme === 'internet-facing')!;
    const sgId = (lb.Properties!.SecurityGroups as { 'Fn::GetAtt': string[] }[])[0]![
      'Fn::GetAtt'
    ][0]!;
    const rules = groups[sgId]!.Properties!.SecurityGroupIngress as {
      CidrIp: string;
      FromPort: number;
    }[];
    const task = Object.values(resourcesOfType(template, 'AWS::ECS::TaskDefinition'))[0]!;
    const vault = (
      task.Properties!.ContainerDefinitions as {
        Name: string;
        Environment: { Name: string; Value: unknown }[];
      }[]
    ).find((c) => c.Name === 'vault')!;
    const env = Object.fromEntries(vault.Environment.map((e) => [e.Name, e.Value]));
    return { cidrs: rules.map((r) => r.CidrIp).sort(), ports: rules.map((r) => r.FromPort), env };
  };

  test('EU and SGP: the public load balancer admits that region only, and the vault knows it', () => {
    for (const region of ['EU', 'SGP'] as const) {
      const { cidrs, ports, env } = ingressOf({ jumioRegion: region });
      expect(cidrs).toEqual(JUMIO_CALLBACK_IPS[region].map((ip) => `${ip}/32`).sort());
      expect(new Set(ports)).toEqual(new Set([443]));
      expect(env.JUMIO_REGION).toBe(region);
      // The vault's own allowlist defaults to the same published list.
      expect(env.JUMIO_CALLBACK_ALLOWED_CIDRS).toBeUndefined();
    }
  });

  test('an overridden list reaches both the security group and the vault', () => {
    const { cidrs, env } = ingressOf({ jumioCallbackCidrs: '198.51.100.7/32,203.0.113.9/32' });
    expect(cidrs).toEqual(['198.51.100.7/32', '203.0.113.9/32']);
    expect(env.JUMIO_CALLBACK_ALLOWED_CIDRS).toBe('198.51.100.7/32,203.0.113.9/32');
  });
});
