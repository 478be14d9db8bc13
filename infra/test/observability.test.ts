/**
 * Metrics and alarms: the ADOT sidecar that turns the vault's Prometheus metrics into
 * CloudWatch metrics, the alarms on them and on the load balancers, and where they notify.
 * One synthesis for the whole file.
 */
import { METRICS_NAMESPACE, QUEUES } from '../lib/observability';
import {
  ECR_IMAGE_CONTEXT,
  onlyResource,
  resourcesOfType,
  synthesize,
  type Synthesized,
} from './synth';

type Props = Record<string, unknown>;
type Alarm = {
  AlarmName: string;
  Namespace?: string;
  MetricName?: string;
  Dimensions?: { Name: string; Value: unknown }[];
  Statistic?: string;
  Threshold: number;
  ComparisonOperator: string;
  EvaluationPeriods: number;
  AlarmActions?: unknown[];
  OKActions?: unknown[];
};
type AdotConfig = {
  receivers: {
    prometheus: { config: { scrape_configs: { static_configs: { targets: string[] }[] }[] } };
  };
  exporters: {
    awsemf: {
      namespace: string;
      log_group_name: unknown;
      metric_declarations: { dimensions: string[][]; metric_name_selectors: string[] }[];
    };
  };
  service: { pipelines: { metrics: { receivers: string[]; exporters: string[] } } };
};

let synth: Synthesized;
let alarms: Alarm[];
let adot: { Image: unknown; Essential?: boolean; Environment: { Name: string; Value: unknown }[] };
let config: AdotConfig;

/** AOT_CONFIG_CONTENT is JSON with tokens joined in: resolve them to placeholders to parse it. */
function parseConfig(value: unknown): AdotConfig {
  if (typeof value === 'string') return JSON.parse(value) as AdotConfig;
  const [, parts] = (value as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
  const text = parts.map((p) => (typeof p === 'string' ? p : 'TOKEN')).join('');
  return JSON.parse(text) as AdotConfig;
}

beforeAll(() => {
  synth = synthesize(ECR_IMAGE_CONTEXT);
  alarms = Object.values(resourcesOfType(synth.template, 'AWS::CloudWatch::Alarm')).map(
    (a) => a.Properties as unknown as Alarm,
  );
  const task = onlyResource(synth.template, 'AWS::ECS::TaskDefinition').props;
  adot = (task.ContainerDefinitions as (typeof adot & { Name: string })[]).find(
    (c) => c.Name === 'adot-collector',
  )!;
  config = parseConfig(adot.Environment.find((e) => e.Name === 'AOT_CONFIG_CONTENT')!.Value);
});

const byName = (suffix: string) => {
  const found = alarms.find((a) => a.AlarmName === `FacemapVault-${suffix}`);
  if (!found) throw new Error(`no alarm FacemapVault-${suffix}`);
  return found;
};
const dims = (alarm: Alarm) =>
  Object.fromEntries((alarm.Dimensions ?? []).map((d) => [d.Name, d.Value]));

describe('ADOT collector sidecar', () => {
  test('runs the AWS Distro for OpenTelemetry image beside the vault, not essential', () => {
    expect(adot.Image).toMatch(
      /^public\.ecr\.aws\/aws-observability\/aws-otel-collector:v\d+\.\d+\.\d+$/,
    );
    expect(adot.Essential).toBe(false);
  });

  test('scrapes the vault on localhost:9464 and exports EMF to the vault namespace', () => {
    const scrape = config.receivers.prometheus.config.scrape_configs;
    expect(scrape.flatMap((s) => s.static_configs.flatMap((c) => c.targets))).toEqual([
      'localhost:9464',
    ]);
    expect(config.exporters.awsemf.namespace).toBe(METRICS_NAMESPACE);
    expect(config.exporters.awsemf.namespace).toBe('FacemapVault');
    expect(config.service.pipelines.metrics).toMatchObject({
      receivers: ['prometheus'],
      exporters: ['awsemf'],
    });
    // No `${`: the collector would expand it as an environment variable (a `$` ending a
    // regular expression is left alone).
    expect(JSON.stringify(config)).not.toMatch(/\$[{$A-Za-z_]/);
  });

  test('exports the four alarmed series with bounded dimensions', () => {
    const selected = config.exporters.awsemf.metric_declarations.flatMap(
      (d) => d.metric_name_selectors,
    );
    expect(selected.sort()).toEqual(
      [
        '^vault_enrollments$',
        '^vault_jumio_requests_total$',
        '^vault_notification_deliveries_total$',
        '^vault_queue_oldest_due_age_seconds$',
      ].sort(),
    );
  });
});

describe('alarms on the vault metrics', () => {
  test.each(QUEUES)('oldest due %s item above the threshold for three periods', (queue) => {
    const alarm = byName(`QueueAge-${queue}`);
    expect(alarm).toMatchObject({
      Namespace: 'FacemapVault',
      MetricName: 'vault_queue_oldest_due_age_seconds',
      Statistic: 'Maximum',
      Threshold: 300,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 3,
    });
    expect(dims(alarm)).toEqual({ queue });
  });

  test('any FAILED enrollment', () => {
    const alarm = byName('EnrollmentsFailed');
    expect(alarm).toMatchObject({
      Namespace: 'FacemapVault',
      MetricName: 'vault_enrollments',
      Statistic: 'Maximum',
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    expect(dims(alarm)).toEqual({ state: 'FAILED' });
  });

  test('Jumio 5xx answers per five minutes', () => {
    const alarm = byName('Jumio5xx');
    expect(alarm).toMatchObject({
      Namespace: 'FacemapVault',
      MetricName: 'vault_jumio_requests_total',
      Statistic: 'Sum',
      Threshold: 5,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    expect(dims(alarm)).toEqual({ status_class: '5xx' });
  });

  test('any failed notification delivery (outbox)', () => {
    const alarm = byName('NotificationDeliveryFailed');
    expect(alarm).toMatchObject({
      Namespace: 'FacemapVault',
      MetricName: 'vault_notification_deliveries_total',
      Statistic: 'Sum',
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    expect(dims(alarm)).toEqual({ outcome: 'failed' });
  });

  test('every alarmed vault metric is exported with exactly the dimensions the alarm uses', () => {
    const declarations = config.exporters.awsemf.metric_declarations;
    const vaultAlarms = alarms.filter((a) => a.Namespace === METRICS_NAMESPACE);
    expect(vaultAlarms).toHaveLength(QUEUES.length + 3);
    for (const alarm of vaultAlarms) {
      const declaration = declarations.find((d) =>
        d.metric_name_selectors.some((sel) => new RegExp(sel).test(alarm.MetricName!)),
      );
      expect([alarm.AlarmName, declaration !== undefined]).toEqual([alarm.AlarmName, true]);
      const names = Object.keys(dims(alarm)).sort();
      expect(declaration!.dimensions.map((set) => [...set].sort())).toContainEqual(names);
    }
  });
});

describe('alarms on the load balancers', () => {
  test('5xx from the public load balancer itself and from the tasks behind it', () => {
    const elb = byName('PublicAlbElb5xx');
    expect(elb).toMatchObject({
      Namespace: 'AWS/ApplicationELB',
      MetricName: 'HTTPCode_ELB_5XX_Count',
    });
    const target = byName('PublicAlbTarget5xx');
    expect(target).toMatchObject({
      Namespace: 'AWS/ApplicationELB',
      MetricName: 'HTTPCode_Target_5XX_Count',
    });
    const publicLb = Object.entries(
      resourcesOfType(synth.template, 'AWS::ElasticLoadBalancingV2::LoadBalancer'),
    ).find(([, lb]) => (lb.Properties as Props).Scheme === 'internet-facing')![0];
    for (const alarm of [elb, target]) {
      expect(JSON.stringify(dims(alarm).LoadBalancer)).toContain(publicLb);
    }
    expect(byName('InternalAlb5xx').MetricName).toBe('HTTPCode_Target_5XX_Count');
    expect(byName('WebhookNoHealthyTask')).toMatchObject({
      MetricName: 'HealthyHostCount',
      ComparisonOperator: 'LessThanThreshold',
      Threshold: 1,
    });
  });
});

test('every alarm notifies the SNS topic on ALARM and on OK', () => {
  const topic = onlyResource(synth.template, 'AWS::SNS::Topic');
  expect(alarms.length).toBeGreaterThanOrEqual(QUEUES.length + 7);
  for (const alarm of alarms) {
    expect(alarm.AlarmActions).toEqual([{ Ref: topic.id }]);
    expect(alarm.OKActions).toEqual([{ Ref: topic.id }]);
  }
});

test('the metrics log group is the one the collector writes to, and the task may write it', () => {
  const groupRef = config.exporters.awsemf.log_group_name;
  expect(groupRef).toBe('TOKEN');
  const raw = JSON.stringify(adot.Environment);
  const metricsGroup = Object.keys(resourcesOfType(synth.template, 'AWS::Logs::LogGroup')).find(
    (id) => id.startsWith('MetricsLogs'),
  )!;
  expect(raw).toContain(`{"Ref":"${metricsGroup}"}`);
});

test('changes that would lose the facemap key notify the topic', () => {
  const rule = onlyResource(synth.template, 'AWS::Events::Rule').props;
  const topic = onlyResource(synth.template, 'AWS::SNS::Topic');
  const keyId = synth.logicalId(synth.stack.facemapKey);
  expect(rule.EventPattern).toEqual({
    source: ['aws.kms'],
    'detail-type': ['AWS API Call via CloudTrail'],
    detail: {
      eventSource: ['kms.amazonaws.com'],
      eventName: expect.arrayContaining(['ScheduleKeyDeletion', 'DisableKey', 'PutKeyPolicy']),
      resources: { ARN: [{ 'Fn::GetAtt': [keyId, 'Arn'] }] },
    },
  });
  expect(rule.Targets).toEqual([expect.objectContaining({ Arn: { Ref: topic.id } })]);
});
