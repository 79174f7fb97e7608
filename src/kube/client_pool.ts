/** Shares one KubeClient per (kubeconfig, context) across all forwards of a session. */

import { KubeClient, type KubeClientOptions } from "./client.ts";

export class KubeClientPool {
  readonly #clients = new Map<string, KubeClient>();
  readonly #load: (options: KubeClientOptions) => KubeClient;

  constructor(load: (options: KubeClientOptions) => KubeClient = KubeClient.load) {
    this.#load = load;
  }

  /** The client for that pair, loaded on first use; loading errors are thrown to the caller each time. */
  get(options: KubeClientOptions): KubeClient {
    const key = `${options.kubeconfig ?? ""}\u0000${options.context ?? ""}`;
    let client = this.#clients.get(key);
    if (!client) {
      client = this.#load(options);
      this.#clients.set(key, client);
    }
    return client;
  }

  close(): void {
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}
