/**
 * Reads kubeconfig files and turns the selected context into TLS options and credentials.
 *
 * Why not client-node's KubeConfig class: importing it pulls in the whole generated API client
 * (~0.6 s and ~60 MiB at startup, ~14 MB in the bundle). Its parsers and authenticators for kubeconfig
 * entries, exec plugins and token files are small modules used here directly; the rare legacy
 * auth-providers (oidc, azure, gcp) are imported on demand, so the bundle keeps them in lazy chunks.
 */

import * as fs from "node:fs";
import type * as https from "node:https";
import * as path from "node:path";
import { parse } from "yaml";
import {
  type Cluster,
  type Context,
  newClusters,
  newContexts,
  newUsers,
  type User,
} from "@kubernetes/client-node/dist/config_types.js";
import type { FileAuth } from "@kubernetes/client-node/dist/file_auth.js";
import { type ExecConfig, ExecCredentialPlugin } from "./exec_credential.ts";
import { KubeconfigError } from "./errors.ts";

export interface Kubeconfig {
  files: string[];
  clusters: Cluster[];
  users: User[];
  contexts: Context[];
  currentContext?: string;
}

/** Loads and merges files like kubectl: the first file that defines a name (or current-context) wins. */
export function loadKubeconfig(files: string[]): Kubeconfig {
  const merged: Kubeconfig = { files, clusters: [], users: [], contexts: [] };
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (error) {
      const missing = (error as { code?: string }).code === "ENOENT";
      throw new KubeconfigError(
        missing ? `Kubeconfig '${file}' does not exist` : `Cannot read kubeconfig '${file}'`,
        {
          hint: "pass an existing file with --kubeconfig or fix KUBECONFIG",
          cause: error,
        },
      );
    }
    let document: Record<string, unknown>;
    try {
      document = (parse(text) ?? {}) as Record<string, unknown>;
      const root = path.dirname(file);
      const clusters = newClusters(document.clusters).map((c) => ({
        ...c,
        caFile: absolute(root, c.caFile),
      }));
      const users = newUsers(document.users).map((u) => ({
        ...u,
        certFile: absolute(root, u.certFile),
        keyFile: absolute(root, u.keyFile),
      }));
      addNew(merged.clusters, clusters);
      addNew(merged.users, users);
      addNew(merged.contexts, newContexts(document.contexts));
    } catch (error) {
      throw new KubeconfigError(`Cannot read kubeconfig '${file}': ${(error as Error).message}`, {
        hint: "check that the file is valid kubeconfig YAML",
        cause: error,
      });
    }
    const current = document["current-context"];
    if (!merged.currentContext && typeof current === "string" && current) merged.currentContext = current;
  }
  return merged;
}

function addNew<T extends { name: string }>(into: T[], items: T[]): void {
  for (const item of items) if (!into.some((existing) => existing.name === item.name)) into.push(item);
}

function absolute(root: string, file: string | undefined): string | undefined {
  return file && !path.isAbsolute(file) ? path.join(root, file) : file;
}

/** TLS material and the Authorization header for one context; exec plugins cache their token until expiry. */
export class Credentials {
  readonly #cluster: Cluster;
  readonly #user?: User;
  #exec?: ExecCredentialPlugin;
  // client-node's authenticators are loaded for the users that need them (each module and its Node
  // imports cost an idle forward memory); once made, each keeps its token cache
  #fileAuth?: Promise<FileAuth>;
  #legacy?: Promise<(options: https.RequestOptions) => Promise<void>>;

  constructor(_kubeconfig: Kubeconfig, _contextName: string, cluster: Cluster, user?: User) {
    this.#cluster = cluster;
    this.#user = user;
  }

  /** The API server answered 401: credentials that can be fetched again (exec plugins) are, next time. */
  rejected(): void {
    this.#exec?.invalidate();
  }

  async apply(options: https.RequestOptions): Promise<void> {
    const cluster = this.#cluster;
    const user = this.#user;
    if (cluster.skipTLSVerify) options.rejectUnauthorized = false;
    if (cluster.tlsServerName) options.servername = cluster.tlsServerName;
    const ca = fileOrData(cluster.caFile, cluster.caData);
    if (ca) options.ca = ca;
    if (!user) return;
    const cert = fileOrData(user.certFile, user.certData);
    if (cert) options.cert = cert;
    const key = fileOrData(user.keyFile, user.keyData);
    if (key) options.key = key;
    const headers = (options.headers ??= {}) as Record<string, string>;
    if (user.impersonateUser) headers["Impersonate-User"] = user.impersonateUser;
    if (user.username && user.password) options.auth = `${user.username}:${user.password}`;
    if (user.exec) {
      this.#exec ??= new ExecCredentialPlugin(user.name, user.exec as ExecConfig, {
        server: cluster.server,
        "certificate-authority-data": cluster.caData,
        "insecure-skip-tls-verify": cluster.skipTLSVerify || undefined,
        "tls-server-name": cluster.tlsServerName,
      });
      const credential = await this.#exec.credential();
      if (credential.clientCertificateData && credential.clientKeyData) {
        options.cert = credential.clientCertificateData;
        options.key = credential.clientKeyData;
      }
      if (credential.token) headers.Authorization = `Bearer ${credential.token}`;
    } else if (user.authProvider?.config?.tokenFile) { // what FileAuth.isAuthProvider() asks
      this.#fileAuth ??= import("@kubernetes/client-node/dist/file_auth.js").then((m) => new m.FileAuth());
      await (await this.#fileAuth).applyAuthentication(user, options);
    } else if (user.authProvider) {
      this.#legacy ??= legacyAuth(user);
      await (await this.#legacy)(options);
    } else if (user.token) {
      headers.Authorization = `Bearer ${user.token.trim()}`;
    }
  }
}

/** PEM text from a path or from base64 `*-data`. */
function fileOrData(file: string | undefined, data: string | undefined): string | undefined {
  if (file) return fs.readFileSync(file, "utf8");
  if (data) return new TextDecoder().decode(Uint8Array.from(atob(data), (c) => c.charCodeAt(0)));
  return undefined;
}

/**
 * oidc/azure/gcp auth-providers: client-node's own authenticators, each imported only when a user needs it.
 * (Not the KubeConfig class: that drags in the generated API client, ~14 MB in the bundle.)
 */
async function legacyAuth(user: User) {
  type Authenticator = {
    isAuthProvider(user: User): boolean;
    applyAuthentication(user: User, options: https.RequestOptions): Promise<void>;
  };
  const name = user.authProvider?.name;
  let authenticator: Authenticator | undefined;
  if (name === "oidc") {
    authenticator = new (await import("@kubernetes/client-node/dist/oidc_auth.js")).OpenIDConnectAuth();
  } else if (name === "azure") {
    authenticator = new (await import("@kubernetes/client-node/dist/azure_auth.js")).AzureAuth();
  } else if (name === "gcp") {
    authenticator = new (await import("@kubernetes/client-node/dist/gcp_auth.js")).GoogleCloudPlatformAuth();
  }
  return async (options: https.RequestOptions) => {
    options.headers ??= {};
    if (authenticator?.isAuthProvider(user)) await authenticator.applyAuthentication(user, options);
    if (user.token) (options.headers as Record<string, string>).Authorization = `Bearer ${user.token.trim()}`;
  };
}
