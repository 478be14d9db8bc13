/**
 * Jumio's published callback source addresses per region (jumio-api.md): the vault's
 * default allowlists and the CDK stack's load-balancer ingress. Plain data with no
 * imports, so that infra/ can use the one list too.
 */
export const JUMIO_CALLBACK_IPS = {
  US: [
    '34.202.241.227',
    '34.226.103.119',
    '34.226.254.127',
    '52.52.51.178',
    '52.53.95.123',
    '54.67.101.173',
  ],
  EU: [
    '34.253.41.236',
    '35.157.27.193',
    '52.48.0.25',
    '52.57.194.92',
    '52.58.113.86',
    '52.209.180.134',
  ],
  SGP: ['3.0.109.121', '52.76.184.73', '52.77.102.92'],
} as const satisfies Record<string, readonly string[]>;
