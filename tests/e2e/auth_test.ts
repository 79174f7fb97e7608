/**
 * The ways a kubeconfig user authenticates besides a client certificate, against the real API server: an
 * exec credential plugin (EKS, GKE, AKS, OIDC login helpers all are one), a token file, and a plugin that
 * fails — which must end in an error that says what to do, not in a hang or a stack trace.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { cluster, kf, tempStateDir } from "./_harness.ts";

interface NamedUser {
  name: string;
  user: Record<string, unknown>;
}

/** A kubeconfig with the test cluster and one context per given user (named after it). */
function kubeconfigWith(dir: string, users: NamedUser[]): string {
  const base = parse(Deno.readTextFileSync(cluster.kubeconfig));
  const file = join(dir, "kubeconfig");
  Deno.writeTextFileSync(
    file,
    stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: base.clusters,
      users,
      contexts: users.map(({ name }) => ({
        name,
        context: { cluster: "kf", user: name, namespace: "default" },
      })),
      "current-context": users[0].name,
    }),
  );
  return file;
}

/** The bearer token of the cluster's kf-token user: what the plugins below hand out. */
function clusterToken(): string {
  const base = parse(Deno.readTextFileSync(cluster.kubeconfig));
  return base.users.find((u: NamedUser) => u.name === "kf-token").user.token;
}

function curlThroughEcho(context: string, kubeconfig: string, stateDir: string, readyTimeout = "20s") {
  return kf(
    [
      "exec",
      "svc/echo",
      "0:80",
      "--context",
      context,
      "--ready-timeout",
      readyTimeout,
      "--",
      "sh",
      "-c",
      'curl -s --max-time 10 "http://$KF_ECHO_HOST:$KF_ECHO_PORT/"',
    ],
    { env: { KF_STATE_DIR: stateDir, KUBECONFIG: kubeconfig } },
  );
}

Deno.test("an exec credential plugin and a token file authenticate kf's watches and port-forwards", async () => {
  const dir = tempStateDir();
  const token = clusterToken();
  const credential = JSON.stringify({
    apiVersion: "client.authentication.k8s.io/v1",
    kind: "ExecCredential",
    status: { token },
  });
  const plugin = join(dir, "credential-plugin.sh");
  const calls = join(dir, "plugin-calls");
  // counts its calls: the token is cached, not fetched again for every request
  Deno.writeTextFileSync(plugin, `#!/bin/sh\necho call >> '${calls}'\nprintf '%s' '${credential}'\n`);
  Deno.chmodSync(plugin, 0o755);
  const tokenFile = join(dir, "token");
  Deno.writeTextFileSync(tokenFile, `${token}\n`);
  const kubeconfig = kubeconfigWith(dir, [
    {
      name: "exec-plugin",
      user: {
        exec: { apiVersion: "client.authentication.k8s.io/v1", command: plugin, interactiveMode: "Never" },
      },
    },
    { name: "token-file", user: { "token-file": tokenFile } },
  ]);
  for (const context of ["exec-plugin", "token-file"]) {
    const out = await curlThroughEcho(context, kubeconfig, dir);
    assert.equal(out.code, 0, `${context}: ${out.stderr}`);
    assert.match(out.stdout, /^echo-/, `${context}: the echo pod answered through the forward`);
  }
  const pluginCalls = Deno.readTextFileSync(calls).trim().split("\n").length;
  assert.ok(pluginCalls >= 1 && pluginCalls <= 2, `the plugin ran ${pluginCalls} times for one forward`);
});

Deno.test("a failing exec plugin: kf exec ends with the plugin's message, exit 1", async () => {
  const dir = tempStateDir();
  const kubeconfig = kubeconfigWith(dir, [
    {
      name: "expired-sso",
      user: {
        exec: {
          apiVersion: "client.authentication.k8s.io/v1",
          command: "sh",
          args: ["-c", "echo 'the SSO session has expired; run: cloud-login' >&2; exit 1"],
          interactiveMode: "Never",
        },
      },
    },
  ]);
  // kf keeps retrying (a login in another terminal brings the forward up); kf exec gives up at its timeout
  const out = await curlThroughEcho("expired-sso", kubeconfig, dir, "4s");
  assert.equal(out.code, 1, out.stderr);
  assert.match(out.stderr, /SSO session has expired/, "the plugin's own words reach the user");
  assert.doesNotMatch(out.stderr, /^\s+at /m, "no stack trace");
  assert.equal(out.stdout, "", "the command never ran");
});
