/**
 * Jumio's regional base URLs (JUMIO_REGION). A module of their own, so that reading the
 * configuration (every CLI command does) does not load the HTTP client.
 */
export const JUMIO_REGION_BASE_URLS = {
  US: 'https://netverify.com',
  EU: 'https://lon.netverify.com',
  SGP: 'https://core-sgp.jumio.com',
} as const;

export type JumioRegion = keyof typeof JUMIO_REGION_BASE_URLS;
