/**
 * HTTP timeouts shared by every AWS SDK client (S3, KMS). The locked
 * @smithy/node-http-handler only logs a warning when `requestTimeout` passes unless
 * `throwOnRequestTimeout` is set, and sets no socket timeout: without these a server that
 * accepts and never answers holds the call (and the worker loop awaiting it) for ever.
 */
export interface AwsHttpTimeouts {
  /** TCP (and TLS) connection. */
  connectMs: number;
  /** From sending the request until the response headers arrive. */
  requestMs: number;
  /** Longest silence on the socket, including while the body streams in. */
  socketMs: number;
}

/** The defaults of AWS_CONNECT_TIMEOUT_MS, AWS_REQUEST_TIMEOUT_MS, AWS_SOCKET_TIMEOUT_MS. */
export const DEFAULT_AWS_TIMEOUTS: AwsHttpTimeouts = {
  connectMs: 3_000,
  requestMs: 30_000,
  socketMs: 30_000,
};

/** The `requestHandler` options (NodeHttpHandler's) for an AWS client. */
export function awsRequestHandler(timeouts: AwsHttpTimeouts) {
  return {
    connectionTimeout: timeouts.connectMs,
    requestTimeout: timeouts.requestMs,
    throwOnRequestTimeout: true,
    socketTimeout: timeouts.socketMs,
  };
}
