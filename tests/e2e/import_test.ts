/**
 * `kf import kftray` against the real cluster: kftray's remote_port is a container port, so the Service is
 * looked up and its Service port written; the imported config then really forwards (kf exec + curl).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { kf, tempStateDir } from "./_harness.ts";

Deno.test("kf import kftray: container ports become Service ports; the config forwards to echo", async () => {
  const dir = tempStateDir();
  const exported = join(dir, "kftray.json");
  // echo's Service: port 80 -> targetPort http (container port 8080), port 9000 -> targetPort echo (9000)
  await Deno.writeTextFile(
    exported,
    JSON.stringify([
      {
        alias: "echo-http",
        service: "echo",
        namespace: "default",
        local_port: 0,
        remote_port: 8080,
        workload_type: "service",
        protocol: "tcp",
      },
      { alias: "echo-raw", target: "app=echo", local_port: 0, remote_port: 9000, workload_type: "pod" },
      { alias: "gone", service: "kf-no-such-service", local_port: 0, remote_port: 8080 },
    ]),
  );
  const imported = await kf(["import", "kftray", exported]);
  assert.equal(imported.code, 0, imported.stderr);
  assert.match(
    imported.stdout,
    /name: echo-http\n\s+namespace: default\n\s+target: svc\/echo\n\s+ports:\n\s+- 0:80\n/,
  );
  assert.match(imported.stdout, /name: echo-raw\n\s+selector: app=echo\n\s+ports:\n\s+- 0:9000\n/);
  assert.match(imported.stderr, /echo-http: container port 8080 is behind Service port 80 \(http\)/);
  assert.match(imported.stderr, /gone: svc\/kf-no-such-service not found: kept 8080/);

  const config = join(dir, "kf.yaml");
  await Deno.writeTextFile(config, imported.stdout);
  const out = await kf(
    [
      "exec",
      "-f",
      config,
      "--only",
      "echo-http",
      "--",
      "sh",
      "-c",
      'curl -s --max-time 10 "http://$KF_ECHO_HTTP_HOST:$KF_ECHO_HTTP_PORT/"',
    ],
    { env: { KF_STATE_DIR: dir } },
  );
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /^echo-/);
});
