/**
 * Who can reach what: the public load balancer (Jumio's callback addresses, POST
 * /webhooks/jumio only), the internal one (/v1), the tasks and the metrics port.
 * One synthesis for the whole file (US region).
 */
import { JUMIO_CALLBACK_IPS } from '../lib/config';
import { INTERNAL_PATHS, WEBHOOK_PATH } from '../lib/vault-stack';
import { resourcesOfType, synthesize, TEST_CONTEXT, type Synthesized } from './synth';

type Props = Record<string, unknown>;
type Ref = { Ref: string };
type GetAtt = { 'Fn::GetAtt': [string, string] };

let synth: Synthesized;
let loadBalancers: [string, Props][];
let publicLb: [string, Props];
let internalLb: [string, Props];
let groups: Record<string, { Properties?: Props }>;

const sgIdOf = (lb: Props) => (lb.SecurityGroups as GetAtt[])[0]!['Fn::GetAtt'][0];
const listenersOf = (lbId: string) =>
  Object.entries(resourcesOfType(synth.template, 'AWS::ElasticLoadBalancingV2::Listener')).filter(
    ([, l]) => (l.Properties!.LoadBalancerArn as Ref).Ref === lbId,
  );
const rulesOf = (listenerId: string) =>
  Object.values(resourcesOfType(synth.template, 'AWS::ElasticLoadBalancingV2::ListenerRule'))
    .map((r) => r.Properties!)
    .filter((r) => (r.ListenerArn as Ref).Ref === listenerId);
const vaultEnvironment = (): Record<string, unknown> => {
  const task = Object.values(resourcesOfType(synth.template, 'AWS::ECS::TaskDefinition'))[0]!;
  const vault = (
    task.Properties!.ContainerDefinitions as {
      Name: string;
      Environment: { Name: string; Value: unknown }[];
    }[]
  ).find((c) => c.Name === 'vault')!;
  return Object.fromEntries(vault.Environment.map((e) => [e.Name, e.Value]));
};

beforeAll(() => {
  synth = synthesize();
  loadBalancers = Object.entries(
    resourcesOfType(synth.template, 'AWS::ElasticLoadBalancingV2::LoadBalancer'),
  ).map(([id, r]) => [id, r.Properties!]);
  publicLb = loadBalancers.find(([, p]) => p.Scheme === 'internet-facing')!;
  internalLb = loadBalancers.find(([, p]) => p.Scheme === 'internal')!;
  groups = resourcesOfType(synth.template, 'AWS::EC2::SecurityGroup');
});

test('there are exactly two load balancers: one public, one internal', () => {
  expect(loadBalancers).toHaveLength(2);
  expect(publicLb).toBeDefined();
  expect(internalLb).toBeDefined();
  for (const [, lb] of loadBalancers) {
    expect(lb.Type).toBe('application');
    expect(lb.LoadBalancerAttributes).toEqual(
      expect.arrayContaining([
        { Key: 'routing.http.drop_invalid_header_fields.enabled', Value: 'true' },
      ]),
    );
  }
});

describe('public load balancer', () => {
  test("admits only the chosen region's Jumio callback addresses, each a /32, on 443", () => {
    const group = groups[sgIdOf(publicLb[1])]!.Properties!;
    const ingress = group.SecurityGroupIngress as Props[];
    expect(ingress.map((r) => r.CidrIp).sort()).toEqual(
      JUMIO_CALLBACK_IPS.US.map((ip) => `${ip}/32`).sort(),
    );
    for (const rule of ingress) {
      expect(rule).toMatchObject({ IpProtocol: 'tcp', FromPort: 443, ToPort: 443 });
      expect(rule.CidrIpv6).toBeUndefined();
    }
    // Nothing added beside the group's own list (no 0.0.0.0/0 from an `open` listener).
    const extra = Object.values(resourcesOfType(synth.template, 'AWS::EC2::SecurityGroupIngress'))
      .map((r) => r.Properties!)
      .filter((r) => (r.GroupId as GetAtt)['Fn::GetAtt'][0] === sgIdOf(publicLb[1]));
    expect(extra).toEqual([]);
    expect(JSON.stringify(groups)).not.toContain('0.0.0.0/0"},"FromPort":443');
  });

  test('reaches nothing but the tasks on 8080', () => {
    const group = groups[sgIdOf(publicLb[1])]!.Properties!;
    // CDK's marker rule for "no egress" (ICMP to 255.255.255.255) or none at all.
    for (const rule of (group.SecurityGroupEgress as Props[] | undefined) ?? []) {
      expect(rule.CidrIp).toBe('255.255.255.255/32');
    }
    const egress = Object.values(resourcesOfType(synth.template, 'AWS::EC2::SecurityGroupEgress'))
      .map((r) => r.Properties!)
      .filter((r) => (r.GroupId as GetAtt)['Fn::GetAtt'][0] === sgIdOf(publicLb[1]));
    expect(egress).toHaveLength(1);
    expect(egress[0]).toMatchObject({ FromPort: 8080, ToPort: 8080 });
    expect((egress[0]!.DestinationSecurityGroupId as GetAtt)['Fn::GetAtt'][0]).toMatch(
      /^ServiceSecurityGroup/,
    );
  });

  test('listens on HTTPS 443 only, with the context certificate and a TLS 1.2+ policy', () => {
    const listeners = listenersOf(publicLb[0]);
    expect(listeners).toHaveLength(1); // no port 80 listener at all
    const listener = listeners[0]![1].Properties!;
    expect(listener).toMatchObject({
      Port: 443,
      Protocol: 'HTTPS',
      Certificates: [{ CertificateArn: TEST_CONTEXT.certificateArn }],
      SslPolicy: 'ELBSecurityPolicy-TLS13-1-2-2021-06',
    });
  });

  test('forwards only POST /webhooks/jumio; everything else gets a fixed 404', () => {
    const [listenerId, listener] = listenersOf(publicLb[0])[0]!;
    expect(listener.Properties!.DefaultActions).toEqual([
      {
        Type: 'fixed-response',
        FixedResponseConfig: expect.objectContaining({ StatusCode: '404' }),
      },
    ]);
    const rules = rulesOf(listenerId);
    expect(rules).toHaveLength(1);
    expect(rules[0]!.Conditions).toEqual([
      { Field: 'path-pattern', PathPatternConfig: { Values: [WEBHOOK_PATH] } },
      { Field: 'http-request-method', HttpRequestMethodConfig: { Values: ['POST'] } },
    ]);
    expect(rules[0]!.Actions).toEqual([
      { Type: 'forward', TargetGroupArn: { Ref: expect.stringMatching(/^WebhookTargets/) } },
    ]);
    expect(WEBHOOK_PATH).toBe('/webhooks/jumio');
  });
});

describe('internal load balancer', () => {
  test('is internal, in the private app subnets', () => {
    expect(internalLb[1].Scheme).toBe('internal');
    for (const subnet of internalLb[1].Subnets as Ref[]) expect(subnet.Ref).toMatch(/^Vpcapp/);
    for (const subnet of publicLb[1].Subnets as Ref[]) expect(subnet.Ref).toMatch(/^Vpcpublic/);
  });

  test('admits the VPC (by default) on 443 only', () => {
    const ingress = groups[sgIdOf(internalLb[1])]!.Properties!.SecurityGroupIngress as Props[];
    expect(ingress).toEqual([
      expect.objectContaining({
        CidrIp: '10.0.0.0/16',
        FromPort: 443,
        ToPort: 443,
        IpProtocol: 'tcp',
      }),
    ]);
  });

  test('forwards /v1 (and the health and API description routes), nothing else', () => {
    const listeners = listenersOf(internalLb[0]);
    expect(listeners).toHaveLength(1);
    const [listenerId, listener] = listeners[0]!;
    expect(listener.Properties).toMatchObject({ Port: 443, Protocol: 'HTTPS' });
    expect(listener.Properties!.DefaultActions).toEqual([
      expect.objectContaining({ Type: 'fixed-response' }),
    ]);
    const rules = rulesOf(listenerId);
    expect(rules).toHaveLength(1);
    expect(rules[0]!.Conditions).toEqual([
      { Field: 'path-pattern', PathPatternConfig: { Values: INTERNAL_PATHS } },
    ]);
    expect(INTERNAL_PATHS).not.toContain(WEBHOOK_PATH);
    expect(rules[0]!.Actions).toEqual([
      { Type: 'forward', TargetGroupArn: { Ref: expect.stringMatching(/^ApiTargets/) } },
    ]);
  });
});

describe('tasks', () => {
  test('accept 8080 from the two load balancers only', () => {
    const serviceSgId = Object.keys(groups).find((id) => id.startsWith('ServiceSecurityGroup'))!;
    expect(groups[serviceSgId]!.Properties!.SecurityGroupIngress).toBeUndefined();
    const ingress = Object.values(resourcesOfType(synth.template, 'AWS::EC2::SecurityGroupIngress'))
      .map((r) => r.Properties!)
      .filter((r) => (r.GroupId as GetAtt)['Fn::GetAtt'][0] === serviceSgId);
    expect(ingress.map((r) => (r.SourceSecurityGroupId as GetAtt)['Fn::GetAtt'][0]).sort()).toEqual(
      [sgIdOf(internalLb[1]), sgIdOf(publicLb[1])].sort(),
    );
    for (const rule of ingress) expect(rule).toMatchObject({ FromPort: 8080, ToPort: 8080 });
  });

  test('never expose the metrics port 9464', () => {
    const json = synth.template.toJSON() as {
      Resources: Record<string, { Type: string; Properties?: Props }>;
    };
    const exposing: string[] = [];
    for (const [id, resource] of Object.entries(json.Resources)) {
      if (resource.Type === 'AWS::ECS::TaskDefinition') {
        const containers = resource.Properties!.ContainerDefinitions as {
          PortMappings?: Props[];
        }[];
        const ports = containers.flatMap((c) => (c.PortMappings ?? []).map((p) => p.ContainerPort));
        expect(ports).toEqual([8080]);
      } else if (
        /"(FromPort|ToPort|Port)":9464\b/.test(JSON.stringify(resource.Properties ?? {}))
      ) {
        exposing.push(id); // a security group rule, listener or target group on 9464
      }
    }
    expect(exposing).toEqual([]);
    for (const tg of Object.values(
      resourcesOfType(synth.template, 'AWS::ElasticLoadBalancingV2::TargetGroup'),
    )) {
      expect(tg.Properties!.Port).toBe(8080);
      expect(tg.Properties!.HealthCheckPath).toBe('/readyz');
    }
  });

  test("trust X-Forwarded-For only from the load balancers' subnets", () => {
    const subnets = resourcesOfType(synth.template, 'AWS::EC2::Subnet');
    const cidrs = Object.entries(subnets)
      .filter(([id]) => /^Vpc(public|app)/.test(id))
      .map(([, s]) => s.Properties!.CidrBlock as string);
    expect(cidrs).toHaveLength(4);
    const trusted = (vaultEnvironment().TRUST_PROXY as string).split(',');
    expect(trusted.sort()).toEqual(cidrs.sort());
    for (const cidr of trusted) expect(cidr).toMatch(/^10\.0\.\d+\.\d+\/(22|24)$/);
  });

  test('run in private subnets without public addresses', () => {
    const service = Object.values(resourcesOfType(synth.template, 'AWS::ECS::Service'))[0]!;
    const network = (service.Properties!.NetworkConfiguration as { AwsvpcConfiguration: Props })
      .AwsvpcConfiguration;
    expect(network.AssignPublicIp).toBe('DISABLED');
    for (const subnet of network.Subnets as Ref[]) expect(subnet.Ref).toMatch(/^Vpcapp/);
  });
});
