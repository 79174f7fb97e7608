import assert from "node:assert/strict";
import { parseConfigText } from "../config/mod.ts";
import { UsageError } from "../errors.ts";
import { convertKftray, parseKftrayExport, renderKfConfig, type ServiceLookup } from "./kftray.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const EXPORT = new URL("./testdata/kftray_export.json", import.meta.url).pathname;

/** Services as an API server would return them, per context/namespace/name. */
const services: ServiceLookup = (where) => {
  const key = `${where.context ?? "-"}/${where.namespace ?? "default"}/${where.service}`;
  const known: Record<string, Awaited<ReturnType<ServiceLookup>>> = {
    "prod-eu/argocd/argocd-server": {
      ports: [{ name: "http", port: 80, targetPort: 8080 }, { name: "https", port: 443, targetPort: 8080 }],
      namedContainerPorts: {},
    },
    "kind-dev/default/httpbin": {
      ports: [{ port: 80, targetPort: "http" }],
      namedContainerPorts: { http: 80 },
    },
  };
  if (key === "-/data/postgres") return Promise.reject(new Error("connection refused"));
  return Promise.resolve(known[key]);
};

Deno.test("kftray export: several contexts, label targets, optional fields; output loads as a kf config", async () => {
  const entries = parseKftrayExport(await Deno.readTextFile(EXPORT), EXPORT);
  const result = await convertKftray(entries, services);
  assert.deepEqual(result.forwards, [
    // remote_port 8080 is the container port behind Service port 80
    {
      name: "argocd",
      context: "prod-eu",
      namespace: "argocd",
      target: "svc/argocd-server",
      ports: ["8888:80"],
    },
    // a named targetPort whose container port is 80: the Service port is 80 too
    { name: "httpbin", context: "kind-dev", namespace: "default", target: "svc/httpbin", ports: ["8081:80"] },
    {
      name: "argocd-2",
      context: "kind-dev",
      kubeconfig: "~/.kube/dev.yaml",
      namespace: "default",
      address: "127.0.0.2",
      selector: "app.kubernetes.io/component=server,tier=frontend",
      ports: ["8181:8080"],
    },
    // no alias, no local_port, no context: named after the service, same local port, current context
    { name: "postgres", namespace: "data", target: "svc/postgres", ports: ["5432:5432"] },
  ]);
  assert.deepEqual(result.skipped, [
    "dns: protocol udp is not supported by kf (TCP only)",
    "rds: workload_type proxy is not supported by kf (it needs a relay pod)",
    "public-demo: workload_type expose is not supported by kf (it needs a relay pod)",
  ]);
  assert.equal(result.notes.length, 4, result.notes.join("\n"));
  assert.match(result.notes[0], /argocd: container port 8080 is behind Service port 80 \(http\)/);
  assert.match(result.notes[1], /domain_enabled/);
  assert.match(result.notes[2], /argocd: named argocd-2/);
  assert.match(
    result.notes[3],
    /postgres: could not look up svc\/postgres \(connection refused\): kept 5432/,
  );

  const yaml = renderKfConfig(result, "kftray_export.json");
  const specs = parseConfigText(yaml, "kf.yaml");
  // kftray's default 127.0.0.1 becomes kf's default, localhost (127.0.0.1 and ::1)
  assert.deepEqual(specs.map((s) => [s.name, s.context, s.namespace, s.addresses, s.ports]), [
    ["argocd", "prod-eu", "argocd", ["localhost"], [{ local: 8888, remote: 80 }]],
    ["httpbin", "kind-dev", "default", ["localhost"], [{ local: 8081, remote: 80 }]],
    ["argocd-2", "kind-dev", "default", ["127.0.0.2"], [{ local: 8181, remote: 8080 }]],
    ["postgres", undefined, "data", ["localhost"], [{ local: 5432, remote: 5432 }]],
  ]);
  assert.deepEqual(specs[2].target, {
    kind: "selector",
    selector: "app.kubernetes.io/component=server,tier=frontend",
  });
});

Deno.test("kftray export without lookups (--offline) keeps the numbers and says so", async () => {
  const result = await convertKftray([{ service: "api", remote_port: 8080, local_port: 0 }]);
  assert.deepEqual(result.forwards, [{ name: "api", target: "svc/api", ports: ["0:8080"] }]);
  assert.match(result.notes[0], /container port in kftray; not checked \(--offline\)/);
});

Deno.test("kftray export: a single object (kftui's own format) and odd aliases", async () => {
  const entries = parseKftrayExport(
    JSON.stringify({ alias: "My API (v2)", service: "api", remote_port: 80, local_port: 8080 }),
    "one.json",
  );
  const result = await convertKftray(entries);
  assert.equal(result.forwards[0].name, "My-API-v2");
  parseConfigText(renderKfConfig(result, "one.json"), "kf.yaml");
});

Deno.test("malformed kftray exports are usage errors naming the file", () => {
  for (
    const [text, pattern] of [
      ["{not json", /bad\.json: not valid JSON/],
      ['"a string"', /expected a JSON array of kftray configs/],
      ["[1, 2]", /entry 1 is not an object/],
      ['[{"service": "api", "remote_port": "eighty"}]', /entry 1: remote_port must be a port number/],
    ] as const
  ) {
    assert.throws(() => parseKftrayExport(text, "bad.json"), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, pattern);
      return true;
    });
  }
});

Deno.test("kf import kftray: exit 2 and one clear line for a malformed file, exit 1 when nothing converts", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const run = async (file: string) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${ROOT}main.ts`, "import", "kftray", "--offline", file],
        stdout: "piped",
        stderr: "piped",
      }).output();
      return {
        code: out.code,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: new TextDecoder().decode(out.stderr),
      };
    };
    await Deno.writeTextFile(`${dir}/bad.json`, '[{"service": "api",');
    const bad = await run(`${dir}/bad.json`);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^kf: .*bad\.json: not valid JSON/);
    assert.doesNotMatch(bad.stderr, /\n\s+at /, "no stack trace");
    const missing = await run(`${dir}/missing.json`);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /Cannot read .*missing\.json/);
    await Deno.writeTextFile(
      `${dir}/udp.json`,
      '[{"alias": "dns", "service": "dns", "remote_port": 53, "protocol": "udp"}]',
    );
    const none = await run(`${dir}/udp.json`);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /skipped dns: protocol udp/);
    assert.equal(none.stdout, "");
    const good = await run(EXPORT);
    assert.equal(good.code, 0, good.stderr);
    parseConfigText(good.stdout, "kf.yaml");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
