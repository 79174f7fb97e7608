/**
 * A kubeconfig user's exec credential plugin (`users[].user.exec`, client.authentication.k8s.io): what EKS,
 * GKE, AKS and OIDC login helpers are. Run as kubectl runs it, and its answer kept as kubectl keeps it: until
 * its expirationTimestamp, or, without one, until the API server refuses it (401). One run at a time: the
 * dials of many connections at once wait for the same run instead of starting the plugin each.
 */

import { KubeconfigError } from "./errors.ts";

/** The `exec` stanza of a kubeconfig user. */
export interface ExecConfig {
  command: string;
  args?: string[];
  env?: { name: string; value: string }[] | null;
  apiVersion?: string;
  installHint?: string;
  interactiveMode?: "Never" | "IfAvailable" | "Always";
  provideClusterInfo?: boolean;
}

/** What a plugin answers with: a bearer token, or a client certificate and key (PEM). */
export interface ExecCredentialStatus {
  token?: string;
  clientCertificateData?: string;
  clientKeyData?: string;
  expirationTimestamp?: string;
}

/** Passed to plugins that ask for it (provideClusterInfo), as client-go does. */
export interface ExecClusterInfo {
  server: string;
  "certificate-authority-data"?: string;
  "insecure-skip-tls-verify"?: boolean;
  "tls-server-name"?: string;
}

/** A credential this close to its expiry is fetched again: a request must not arrive with a dead token. */
const EXPIRY_MARGIN_MS = 10_000;
/** A plugin that cannot ask the user anything and has not answered by then is stuck. */
const NON_INTERACTIVE_TIMEOUT_MS = 120_000;
/** Of a failed plugin's stderr, the end goes into the error (where tools print the reason). */
const STDERR_CHARS = 600;

export class ExecCredentialPlugin {
  readonly #user: string;
  readonly #exec: ExecConfig;
  readonly #cluster?: ExecClusterInfo;
  readonly #now: () => number;
  #cached?: { status: ExecCredentialStatus; expiresAt: number };
  #running?: Promise<ExecCredentialStatus>;

  constructor(user: string, exec: ExecConfig, cluster?: ExecClusterInfo, now: () => number = Date.now) {
    this.#user = user;
    this.#exec = exec;
    this.#cluster = cluster;
    this.#now = now;
  }

  /** The plugin's current credential: the kept one while it is valid, else a (shared) new run's. */
  credential(): Promise<ExecCredentialStatus> {
    if (this.#cached && this.#cached.expiresAt > this.#now()) return Promise.resolve(this.#cached.status);
    this.#running ??= this.#run().finally(() => this.#running = undefined);
    return this.#running;
  }

  /** The API server refused the credential (401): the next request runs the plugin again. */
  invalidate(): void {
    this.#cached = undefined;
  }

  async #run(): Promise<ExecCredentialStatus> {
    const exec = this.#exec;
    const name = `exec plugin '${exec.command}' of user '${this.#user}'`;
    const interactive = exec.interactiveMode !== "Never" && Deno.stdin.isTerminal();
    if (exec.interactiveMode === "Always" && !interactive) {
      throw new KubeconfigError(`The ${name} needs a terminal to ask for input (interactiveMode: Always)`, {
        hint: "run kf in a terminal, or log in with the plugin first",
      });
    }
    const env: Record<string, string> = {
      KUBERNETES_EXEC_INFO: JSON.stringify({
        apiVersion: exec.apiVersion ?? "client.authentication.k8s.io/v1",
        kind: "ExecCredential",
        spec: {
          interactive,
          ...(exec.provideClusterInfo && this.#cluster ? { cluster: this.#cluster } : {}),
        },
      }),
    };
    for (const variable of exec.env ?? []) env[variable.name] = variable.value;
    const signal = interactive ? undefined : AbortSignal.timeout(NON_INTERACTIVE_TIMEOUT_MS);
    let output: Deno.CommandOutput;
    try {
      output = await new Deno.Command(exec.command, {
        args: exec.args ?? [],
        env,
        // an interactive plugin talks to the user itself (device codes, browser links, prompts)
        stdin: interactive ? "inherit" : "null",
        stdout: "piped",
        stderr: interactive ? "inherit" : "piped",
        signal,
      }).output();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new KubeconfigError(`The ${name} was not found`, {
          hint: exec.installHint?.trim() || "install it, or fix users[].user.exec.command in the kubeconfig",
          cause: error,
        });
      }
      throw new KubeconfigError(`Cannot run the ${name}: ${(error as Error).message}`, { cause: error });
    }
    if (signal?.aborted) {
      throw new KubeconfigError(`The ${name} did not answer within ${NON_INTERACTIVE_TIMEOUT_MS / 1000} s`, {
        hint: "run it by hand to see what it waits for (often: a login)",
      });
    }
    if (!output.success) {
      const stderr = interactive ? "" : new TextDecoder().decode(output.stderr).trim().slice(-STDERR_CHARS);
      throw new KubeconfigError(
        `The ${name} failed (exit code ${output.code})${stderr ? `: ${stderr}` : ""}`,
        { hint: "run it by hand to see why; often the login it relies on has expired" },
      );
    }
    const status = parseCredential(new TextDecoder().decode(output.stdout), exec, name);
    const expiry = status.expirationTimestamp ? Date.parse(status.expirationTimestamp) : NaN;
    this.#cached = {
      status,
      expiresAt: Number.isFinite(expiry) ? expiry - EXPIRY_MARGIN_MS : Number.POSITIVE_INFINITY,
    };
    return status;
  }
}

function parseCredential(stdout: string, exec: ExecConfig, name: string): ExecCredentialStatus {
  let document: { apiVersion?: string; kind?: string; status?: ExecCredentialStatus };
  try {
    document = JSON.parse(stdout);
  } catch {
    throw new KubeconfigError(`The ${name} printed no ExecCredential JSON: '${stdout.trim().slice(0, 80)}'`, {
      hint: "run it by hand: it should print a JSON object with kind ExecCredential",
    });
  }
  if (exec.apiVersion && document.apiVersion && document.apiVersion !== exec.apiVersion) {
    throw new KubeconfigError(
      `The ${name} answered with apiVersion ${document.apiVersion}, the kubeconfig asks for ${exec.apiVersion}`,
      { hint: "set users[].user.exec.apiVersion to what the plugin prints" },
    );
  }
  const status = document.status ?? {};
  const certificate = Boolean(status.clientCertificateData && status.clientKeyData);
  if (!status.token && !certificate) {
    throw new KubeconfigError(`The ${name} returned neither a token nor a client certificate and key`, {
      hint: "run it by hand and check its status field",
    });
  }
  return status;
}
