import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';

/** CloudWatch namespace of the metrics the ADOT sidecar exports from the vault's /metrics. */
export const METRICS_NAMESPACE = 'FacemapVault';
/** The vault's Prometheus listener (METRICS_PORT); reached only over the task's localhost. */
export const METRICS_PORT = 9464;
/** The background queues that report `vault_queue_oldest_due_age_seconds{queue}`. */
export const QUEUES = ['enrollments', 'authentications', 'notifications', 'erasures'] as const;

/**
 * The series exported to CloudWatch (EMF) and the dimensions they keep. Everything else on
 * /metrics stays in Prometheus form only: add a declaration here to chart more.
 * `status_class` is derived in the scrape (5xx only), so one alarm covers every 5xx code.
 */
export const METRIC_DECLARATIONS = [
  { dimensions: [['queue']], metric_name_selectors: ['^vault_queue_oldest_due_age_seconds$'] },
  { dimensions: [['state']], metric_name_selectors: ['^vault_enrollments$'] },
  {
    dimensions: [['status_class'], ['endpoint', 'status']],
    metric_name_selectors: ['^vault_jumio_requests_total$'],
  },
  { dimensions: [['outcome']], metric_name_selectors: ['^vault_notification_deliveries_total$'] },
];

/**
 * The AWS Distro for OpenTelemetry collector's configuration (JSON is YAML): scrape the
 * vault on localhost every minute, export the declared series as CloudWatch embedded
 * metric format into `logGroupName`. Counters arrive as per-minute increases (awsemf
 * turns cumulative counters into deltas). No `$` anywhere: the collector would expand it.
 */
export function adotConfig(props: { logGroupName: string; region: string }): object {
  return {
    receivers: {
      prometheus: {
        config: {
          global: { scrape_interval: '60s', scrape_timeout: '10s' },
          scrape_configs: [
            {
              job_name: 'facemap-vault',
              static_configs: [{ targets: [`localhost:${METRICS_PORT}`] }],
              metric_relabel_configs: [
                {
                  source_labels: ['__name__', 'status'],
                  regex: 'vault_jumio_requests_total;5(\\d\\d|xx)',
                  target_label: 'status_class',
                  replacement: '5xx',
                },
              ],
            },
          ],
        },
      },
    },
    processors: {
      // ECS task id for the log stream name, so tasks do not share a stream.
      resourcedetection: { detectors: ['env', 'ecs'], timeout: '5s', override: false },
      batch: { timeout: '60s' },
    },
    exporters: {
      awsemf: {
        namespace: METRICS_NAMESPACE,
        region: props.region,
        log_group_name: props.logGroupName,
        log_stream_name: 'vault-{TaskId}',
        dimension_rollup_option: 'NoDimensionRollup',
        metric_declarations: METRIC_DECLARATIONS,
      },
    },
    service: {
      pipelines: {
        metrics: {
          receivers: ['prometheus'],
          processors: ['resourcedetection', 'batch'],
          exporters: ['awsemf'],
        },
      },
    },
  };
}

export interface VaultAlarmsProps {
  topic: sns.ITopic;
  queueAgeAlarmSeconds: number;
  jumio5xxAlarmThreshold: number;
  publicLoadBalancer: elbv2.ApplicationLoadBalancer;
  internalLoadBalancer: elbv2.ApplicationLoadBalancer;
  webhookTargetGroup: elbv2.ApplicationTargetGroup;
}

/** 5xx answers per 5 minutes that page: Jumio retries a 5xx, so a few are survivable. */
const ALB_5XX_THRESHOLD = 5;

/** The vault's alarms; each notifies the topic on ALARM and on OK. */
export class VaultAlarms extends Construct {
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: VaultAlarmsProps) {
    super(scope, id);
    const vault = (metricName: string, dimensions: Record<string, string>, statistic: string) =>
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName,
        dimensionsMap: dimensions,
        statistic,
        period: Duration.minutes(5),
      });

    for (const queue of QUEUES) {
      this.add(`QueueAge-${queue}`, {
        alarmDescription: `The oldest due ${queue} item has waited more than ${props.queueAgeAlarmSeconds} s for 15 minutes: workers are stuck, failing or too few.`,
        metric: vault('vault_queue_oldest_due_age_seconds', { queue }, 'Maximum'),
        threshold: props.queueAgeAlarmSeconds,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
      });
    }
    this.add('EnrollmentsFailed', {
      alarmDescription:
        'At least one enrollment is FAILED (retries exhausted): inspect it and replay it (vault replay).',
      metric: vault('vault_enrollments', { state: 'FAILED' }, 'Maximum'),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
    });
    this.add('Jumio5xx', {
      alarmDescription: `Jumio answered 5xx at least ${props.jumio5xxAlarmThreshold} times in 5 minutes.`,
      metric: vault('vault_jumio_requests_total', { status_class: '5xx' }, 'Sum'),
      threshold: props.jumio5xxAlarmThreshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });
    this.add('NotificationDeliveryFailed', {
      alarmDescription:
        'A notification exhausted its delivery attempts (outbox outcome "failed"): the receiver is down or refusing it.',
      metric: vault('vault_notification_deliveries_total', { outcome: 'failed' }, 'Sum'),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
    });

    const fiveMinuteSum = { period: Duration.minutes(5), statistic: 'Sum' };
    this.add('PublicAlbElb5xx', {
      alarmDescription:
        'The public load balancer itself answered Jumio with 5xx (no healthy task, timeouts).',
      metric: props.publicLoadBalancer.metrics.httpCodeElb(
        elbv2.HttpCodeElb.ELB_5XX_COUNT,
        fiveMinuteSum,
      ),
      threshold: ALB_5XX_THRESHOLD,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });
    this.add('PublicAlbTarget5xx', {
      alarmDescription:
        'The vault answered Jumio callbacks with 5xx (it could not commit them; Jumio retries).',
      metric: props.publicLoadBalancer.metrics.httpCodeTarget(
        elbv2.HttpCodeTarget.TARGET_5XX_COUNT,
        fiveMinuteSum,
      ),
      threshold: ALB_5XX_THRESHOLD,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });
    this.add('InternalAlb5xx', {
      alarmDescription: 'The internal /v1 API answered 5xx.',
      metric: props.internalLoadBalancer.metrics.httpCodeTarget(
        elbv2.HttpCodeTarget.TARGET_5XX_COUNT,
        fiveMinuteSum,
      ),
      threshold: ALB_5XX_THRESHOLD,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });
    this.add('WebhookNoHealthyTask', {
      alarmDescription: 'No task is ready behind the public load balancer: callbacks get 5xx.',
      metric: props.webhookTargetGroup.metrics.healthyHostCount({
        period: Duration.minutes(1),
        statistic: 'Minimum',
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 2,
      // The load balancer reports healthy hosts every minute; silence means none.
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });

    const action = new actions.SnsAction(props.topic);
    for (const alarm of this.alarms) {
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }
  }

  private add(id: string, props: cloudwatch.AlarmProps): void {
    this.alarms.push(
      new cloudwatch.Alarm(this, id, {
        alarmName: `${Stack.of(this).stackName}-${id}`,
        // Counters and gauges are absent while nothing happens: that is not an incident.
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        ...props,
      }),
    );
  }
}
