/**
 * The deployment's settings, read from CDK context (`-c key=value`, cdk.json or
 * cdk.context.json) and validated once: a missing or malformed value fails synthesis
 * with a list naming every problem, before anything reaches CloudFormation.
 */

import { JUMIO_CALLBACK_IPS } from '../../src/core/jumio-callback-ips';

export const JUMIO_REGIONS = ['US', 'EU', 'SGP'] as const;
export type JumioRegion = (typeof JUMIO_REGIONS)[number];

/** Jumio's published callback source addresses per region, the vault's own list: the public load balancer admits only these. */
export { JUMIO_CALLBACK_IPS };

/** CloudWatch Logs accepts only these retention periods (days). */
const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288,
  3653,
];

/** The User-Agent shape Jumio asks for (`Company App/1.2.3`), as the vault checks it. */
const USER_AGENT = /^[\x21-\x7e][\x20-\x7e]* [\x21-\x7e]+\/\d+(\.\d+)*$/;
const ACM_ARN = /^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate\/[A-Za-z0-9-]+$/;
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/;
const IPV4_CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

export interface VaultSettings {
  /** Fixed account/region, or undefined for an environment-agnostic template. */
  account: string | undefined;
  region: string | undefined;
  stackName: string;
  jumioRegion: JumioRegion;
  /** Canonical /32 CIDRs the public load balancer admits on 443. */
  jumioCallbackCidrs: string[];
  /** True when jumioCallbackCidrs came from context rather than Jumio's published list. */
  jumioCallbackCidrsOverridden: boolean;
  jumioUserAgent: string;
  certificateArn: string;
  internalCertificateArn: string;
  vaultPublicUrl: string;
  vpcCidr: string;
  /** Who may reach the internal /v1 load balancer; undefined means the VPC's own CIDR. */
  apiAllowedCidrs: string[] | undefined;
  natGateways: number;
  desiredCount: number;
  taskCpu: number;
  taskMemoryMiB: number;
  /** ECR repository name + tag or digest; undefined builds the image from the repo's Dockerfile. */
  image: { repository: string; tag: string } | undefined;
  adotImage: string;
  logRetentionDays: number;
  dbInstanceType: string;
  dbAllocatedStorageGiB: number;
  dbBackupRetentionDays: number;
  previousKmsKeyArns: string[];
  /** Origins the calling services' notifyUrl may use (VAULT_NOTIFY_ALLOWED_ORIGINS). */
  notifyAllowedOrigins: string[];
  alarmEmail: string | undefined;
  queueAgeAlarmSeconds: number;
  jumio5xxAlarmThreshold: number;
  /** True when sample values filled the gaps (`-c sample=true`): not deployable as is. */
  sample: boolean;
}

/** Reads one context value; the App, a Stage or a Stack's node all answer. */
export type ContextReader = (key: string) => unknown;

/** Values that make a template synthesize for review; `sample=true` only, never deployed. */
export const SAMPLE_CONTEXT: Readonly<Record<string, string>> = {
  jumioRegion: 'US',
  certificateArn:
    'arn:aws:acm:us-east-1:111111111111:certificate/00000000-0000-0000-0000-000000000000',
  vaultPublicUrl: 'https://vault.example.com',
  jumioUserAgent: 'Example Bank FacemapVault/1.0.0',
};

export class SettingsError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid CDK context:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'SettingsError';
  }
}

function isValidIpv4Cidr(cidr: string): boolean {
  const m = IPV4_CIDR.exec(cidr);
  if (!m) return false;
  const octets = m.slice(1, 5).map(Number);
  const prefix = Number(m[5]);
  return octets.every((o) => o <= 255) && prefix <= 32;
}

/** Context values arrive as strings from `-c` and as JSON values from cdk.json. */
function text(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  const s = String(value).trim();
  return s === '' ? undefined : s;
}

function list(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  const items = Array.isArray(value) ? value.map(String) : String(value).split(/[\s,]+/);
  const out = items.map((v) => v.trim()).filter((v) => v !== '');
  return out.length === 0 ? undefined : out;
}

export function readSettings(context: ContextReader): VaultSettings {
  const problems: string[] = [];
  const sample = text(context('sample')) === 'true';
  const get = (key: string): string | undefined =>
    text(context(key)) ?? (sample ? SAMPLE_CONTEXT[key] : undefined);

  const required = (key: string, hint: string): string => {
    const value = get(key);
    if (value === undefined) problems.push(`${key}: required (${hint})`);
    return value ?? '';
  };

  const integer = (key: string, fallback: number, min: number, max: number): number => {
    const raw = get(key);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < min || n > max) {
      problems.push(`${key}: must be an integer from ${min} to ${max}`);
      return fallback;
    }
    return n;
  };

  const jumioRegionRaw = required('jumioRegion', `one of ${JUMIO_REGIONS.join(', ')}`);
  const jumioRegion = (JUMIO_REGIONS as readonly string[]).includes(jumioRegionRaw)
    ? (jumioRegionRaw as JumioRegion)
    : undefined;
  if (jumioRegionRaw !== '' && jumioRegion === undefined) {
    problems.push(`jumioRegion: must be one of ${JUMIO_REGIONS.join(', ')}`);
  }

  const overrideCidrs = list(context('jumioCallbackCidrs'));
  for (const cidr of overrideCidrs ?? []) {
    if (!isValidIpv4Cidr(cidr)) problems.push(`jumioCallbackCidrs: ${cidr} is not an IPv4 CIDR`);
    else if (cidr.endsWith('/0')) problems.push('jumioCallbackCidrs: /0 would admit everyone');
  }
  const jumioCallbackCidrs =
    overrideCidrs ?? (jumioRegion ? JUMIO_CALLBACK_IPS[jumioRegion].map((ip) => `${ip}/32`) : []);

  const jumioUserAgent = required(
    'jumioUserAgent',
    'your business in Jumio\'s form "Company App/1.2.3"',
  );
  if (jumioUserAgent !== '' && !USER_AGENT.test(jumioUserAgent)) {
    problems.push('jumioUserAgent: must look like "Company App/1.2.3"');
  }

  const certificateArn = required(
    'certificateArn',
    'ACM certificate for the public HTTPS listener',
  );
  if (certificateArn !== '' && !ACM_ARN.test(certificateArn)) {
    problems.push('certificateArn: must be an ACM certificate ARN');
  }
  const internalCertificateRaw = get('internalCertificateArn');
  const internalCertificateArn = internalCertificateRaw ?? certificateArn;
  if (internalCertificateRaw !== undefined && !ACM_ARN.test(internalCertificateRaw)) {
    problems.push('internalCertificateArn: must be an ACM certificate ARN');
  }

  const vaultPublicUrl = required('vaultPublicUrl', 'the https URL Jumio posts callbacks to');
  if (vaultPublicUrl !== '') {
    let ok = false;
    try {
      ok = new URL(vaultPublicUrl).protocol === 'https:';
    } catch {
      ok = false;
    }
    if (!ok) problems.push('vaultPublicUrl: must be an absolute https URL');
  }

  const vpcCidr = get('vpcCidr') ?? '10.0.0.0/16';
  if (!isValidIpv4Cidr(vpcCidr) || !/\/(1[6-9]|20)$/.test(vpcCidr)) {
    problems.push('vpcCidr: must be an IPv4 CIDR from /16 to /20 (room for the six subnets)');
  }
  const apiAllowedCidrs = list(context('apiAllowedCidrs'));
  for (const cidr of apiAllowedCidrs ?? []) {
    if (!isValidIpv4Cidr(cidr)) problems.push(`apiAllowedCidrs: ${cidr} is not an IPv4 CIDR`);
    else if (cidr.endsWith('/0')) problems.push('apiAllowedCidrs: /0 would open the API to all');
  }

  // 0 is for the first deploy, before the secrets hold real values (see README); one
  // task would leave callbacks unanswered during every deployment or task replacement.
  const desiredCount = integer('desiredCount', 2, 0, 100);
  if (desiredCount === 1) problems.push('desiredCount: must be 0 (bootstrap) or at least 2');

  const repository = get('imageRepository');
  const tag = get('imageTag');
  if ((repository === undefined) !== (tag === undefined)) {
    problems.push('imageRepository and imageTag: give both or neither');
  }

  const logRetentionDays = integer('logRetentionDays', 365, 1, 3653);
  if (!LOG_RETENTION_DAYS.includes(logRetentionDays)) {
    problems.push(`logRetentionDays: must be one of ${LOG_RETENTION_DAYS.join(', ')}`);
  }

  const previousKmsKeyArns = list(context('previousKmsKeyArns')) ?? [];
  for (const arn of previousKmsKeyArns) {
    if (!KMS_KEY_ARN.test(arn)) problems.push(`previousKmsKeyArns: ${arn} is not a KMS key ARN`);
  }

  const notifyAllowedOrigins = list(context('notifyAllowedOrigins')) ?? [];
  for (const origin of notifyAllowedOrigins) {
    let ok = false;
    try {
      const url = new URL(origin);
      ok = url.protocol === 'https:' && url.origin === origin;
    } catch {
      ok = false;
    }
    if (!ok) problems.push(`notifyAllowedOrigins: ${origin} is not an https origin`);
  }

  const account = get('account');
  const region = get('region');
  if (account !== undefined && !/^\d{12}$/.test(account)) {
    problems.push('account: must be a 12-digit AWS account id');
  }
  if ((account === undefined) !== (region === undefined)) {
    problems.push('account and region: give both or neither (neither: environment-agnostic)');
  }

  // Also names the bucket (`<stack>-facemaps-<account>-<region>`, at most 63 characters).
  const stackName = get('stackName') ?? 'FacemapVault';
  if (!/^[A-Za-z][A-Za-z0-9-]{0,19}$/.test(stackName)) {
    problems.push('stackName: a letter, then up to 19 letters, digits or hyphens');
  }

  const settings: VaultSettings = {
    account,
    region,
    stackName,
    jumioRegion: jumioRegion ?? 'US',
    jumioCallbackCidrs,
    jumioCallbackCidrsOverridden: overrideCidrs !== undefined,
    jumioUserAgent,
    certificateArn,
    internalCertificateArn,
    vaultPublicUrl,
    vpcCidr,
    apiAllowedCidrs,
    natGateways: integer('natGateways', 2, 1, 2),
    desiredCount,
    taskCpu: integer('taskCpu', 512, 256, 4096),
    taskMemoryMiB: integer('taskMemoryMiB', 1024, 512, 30720),
    image: repository !== undefined && tag !== undefined ? { repository, tag } : undefined,
    adotImage: get('adotImage') ?? 'public.ecr.aws/aws-observability/aws-otel-collector:v0.47.0',
    logRetentionDays,
    dbInstanceType: get('dbInstanceType') ?? 't4g.medium',
    dbAllocatedStorageGiB: integer('dbAllocatedStorageGiB', 20, 20, 65536),
    dbBackupRetentionDays: integer('dbBackupRetentionDays', 35, 1, 35),
    previousKmsKeyArns,
    notifyAllowedOrigins,
    alarmEmail: get('alarmEmail'),
    queueAgeAlarmSeconds: integer('queueAgeAlarmSeconds', 300, 1, 86_400),
    jumio5xxAlarmThreshold: integer('jumio5xxAlarmThreshold', 5, 1, 100_000),
    sample,
  };
  if (problems.length > 0) throw new SettingsError(problems);
  return settings;
}
