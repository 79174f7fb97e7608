/** Errors from talking to a cluster, classified by HTTP status or socket error code, never by text. */

import { KfError, type KfErrorOptions } from "../errors.ts";

/** What a request was trying to do, so errors can name the missing RBAC permission. */
export interface RequestPurpose {
  /** RBAC verb: get, list, watch, create. */
  verb: string;
  /** RBAC resource, with subresource: "pods", "pods/portforward", "services". */
  resource: string;
  namespace?: string;
  name?: string;
}

/** The API server answered with a non-2xx status. */
export class ApiError extends KfError {
  override name = "ApiError";
  readonly status: number;
  /** Kubernetes Status.reason, e.g. "NotFound", "Forbidden", "Expired". */
  readonly reason?: string;
  readonly purpose?: RequestPurpose;

  constructor(
    status: number,
    detail: string,
    options: KfErrorOptions & { reason?: string; purpose?: RequestPurpose } = {},
  ) {
    super(`${describePurpose(options.purpose)}failed: ${status} ${detail}`, {
      hint: options.hint ?? hintForStatus(status, options.purpose),
      cause: options.cause,
    });
    this.status = status;
    this.reason = options.reason;
    this.purpose = options.purpose;
  }
}

/** The API server could not be reached at all (DNS, refused, TLS, timeout). */
export class ApiUnreachableError extends KfError {
  override name = "ApiUnreachableError";
  readonly code?: string;

  constructor(server: string, code: string | undefined, detail: string, cause?: unknown) {
    super(`Cannot reach the API server at ${server}: ${detail}`, {
      hint: "check the network or VPN, and that the kubeconfig context points at a running cluster",
      cause,
    });
    this.code = code;
  }
}

/** The kubeconfig file, context or user cannot be used. */
export class KubeconfigError extends KfError {
  override name = "KubeconfigError";
}

function describePurpose(purpose?: RequestPurpose): string {
  if (!purpose) return "";
  const what = purpose.name ? `${purpose.resource} '${purpose.name}'` : purpose.resource;
  const where = purpose.namespace ? ` in namespace '${purpose.namespace}'` : "";
  return `Cannot ${purpose.verb} ${what}${where}: `;
}

function hintForStatus(status: number, purpose?: RequestPurpose): string | undefined {
  switch (status) {
    case 401:
      return "the credentials were rejected; refresh them (e.g. log in again) or pick another --context";
    case 403: {
      if (!purpose) return "RBAC denied the request";
      // a WebSocket upgrade is a GET; since Kubernetes 1.35 it is also authorized as create
      const verbs = purpose.resource === "pods/portforward" ? "'get' and 'create'" : `'${purpose.verb}'`;
      return `RBAC needs verb ${verbs} on '${purpose.resource}'` +
        (purpose.namespace ? ` in namespace '${purpose.namespace}'` : "") +
        "; kf's minimal Role: get/list/watch on pods and services, get+create on pods/portforward " +
        "(create alone is enough for the default transport, which then uses the SPDY upgrade)";
    }
    case 404:
      return purpose?.namespace
        ? `check the name and the namespace (-n); namespace now: '${purpose.namespace}'`
        : undefined;
    default:
      return undefined;
  }
}
