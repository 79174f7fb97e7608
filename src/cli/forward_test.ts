import assert from "node:assert/strict";
import { join } from "node:path";
import { UsageError } from "../errors.ts";
import { adHocForward } from "../config/mod.ts";
import { exposureWarning, forwardSpecs } from "./forward.ts";
import { formatListeners } from "./format.ts";

const REPO = new URL("../..", import.meta.url).pathname;
const CONFIG = "forwards:\n  - {name: api, target: svc/api, namespace: dev, ports: [8080:80]}\n";

/** Runs kf as a user would; config errors need no cluster, so these end before any API call. */
async function kf(args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", join(REPO, "deno.json"), join(REPO, "main.ts"), ...args],
    cwd: REPO,
    stdout: "null",
    stderr: "piped",
    // no cluster may be reached by accident: a forward that started would fail here instead of running
    env: { KUBECONFIG: "/nonexistent/kubeconfig", KF_STATE_DIR: "/nonexistent/state" },
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

async function withConfigDir(fn: (dir: string, file: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const file = join(dir, "kf.yaml");
  await Deno.writeTextFile(file, CONFIG);
  try {
    await fn(dir, file);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function rejected(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected a rejection");
}

Deno.test("kf forward -f exits 2 with a clear message for a missing file, a directory and bad overrides", async () => {
  await withConfigDir(async (dir, file) => {
    const cases: Array<{ args: string[]; stderr: RegExp }> = [
      {
        args: ["forward", "-f", join(dir, "nope.yaml")],
        stderr: /^kf: Cannot read config file .*nope\.yaml: not found\n {2}hint: Check the path/,
      },
      {
        args: ["forward", "-f", dir],
        stderr:
          /^kf: Cannot read config file .*: it is a directory\n {2}hint: Pass the path of a YAML file inside it/,
      },
      {
        args: ["forward", "-f", file, "-n", "Bad_NS"],
        stderr: /^kf: Cannot use --namespace "Bad_NS": use up to 63 lowercase letters/,
      },
      {
        args: ["forward", "-f", file, "--address", "my-host"],
        stderr: /^kf: Cannot use --address "my-host": use an IP address such as 127\.0\.0\.1/,
      },
      {
        args: ["forward", "-f", file, "--context", ""],
        stderr: /^kf: Cannot use --context "": it is empty; name one from kubectl config get-contexts/,
      },
    ];
    const results = await Promise.all(cases.map((c) => kf(c.args)));
    results.forEach((result, i) => {
      assert.equal(result.code, 2, `${cases[i].args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, cases[i].stderr);
      assert.doesNotMatch(result.stderr, /\bat .*\.ts:\d+/, "no stack trace");
    });
  });
});

Deno.test("forwardSpecs() with -f rejects an unreadable file as a usage error", async (t) => {
  if (Deno.uid() === 0) {
    // root reads a mode-000 file anyway, so this case cannot be produced here
    console.log("skipped: running as root, a mode-000 file is still readable");
    return;
  }
  await withConfigDir(async (_dir, file) => {
    await Deno.chmod(file, 0o000);
    await t.step("permission denied", async () => {
      const error = await rejected(forwardSpecs(undefined, [], { file: [file] }));
      assert.ok(error instanceof UsageError);
      assert.equal(error.exitCode, 2);
      assert.match(error.message, /: permission denied$/);
    });
  });
});

Deno.test("forwardSpecs() with -f applies the validated overrides to every forward", async () => {
  await withConfigDir(async (_dir, file) => {
    const [spec] = await forwardSpecs(undefined, [], {
      file: [file],
      namespace: "prod",
      context: "ctx",
      address: "::1",
      podWaitTimeout: "5s",
      transport: "spdy",
      kubeconfig: "~/kc",
    });
    assert.equal(spec.namespace, "prod");
    assert.equal(spec.context, "ctx");
    assert.deepEqual(spec.addresses, ["::1"]);
    assert.equal(spec.podWaitTimeoutMs, 5000);
    assert.equal(spec.transport, "spdy");
    assert.ok(spec.kubeconfig?.endsWith("/kc") && !spec.kubeconfig.startsWith("~"), spec.kubeconfig);
    const [plain] = await forwardSpecs(undefined, [], { file: [file] });
    assert.equal(plain.namespace, "dev", "without an override the file's value stays");
  });
});

Deno.test("forwardSpecs() with -f checks overrides before reading the files", async () => {
  const error = await rejected(
    forwardSpecs(undefined, [], { file: ["/nonexistent/kf.yaml"], transport: "quic" }),
  );
  assert.ok(error instanceof UsageError);
  assert.equal(error.message, 'Cannot use --transport "quic": use one of: auto, websocket, spdy');
});

Deno.test("exposureWarning() names the addresses beyond loopback, in one line", () => {
  const spec = (addresses: string[]) =>
    adHocForward({ target: "svc/api", ports: ["80"], address: addresses.join(",") });
  assert.equal(exposureWarning(spec(["localhost"])), undefined);
  assert.equal(exposureWarning(spec(["127.0.0.2", "::1"])), undefined);
  assert.equal(
    exposureWarning(spec(["localhost", "10.0.0.5", "fe80::1"])),
    "forward 'api' listens on 10.0.0.5, fe80::1, not only loopback: anyone who can reach that address can use the forward",
  );
});

Deno.test("formatListeners() groups the addresses of one port, IPv6 in brackets", () => {
  const listeners = [
    { address: "127.0.0.1", port: 8080, remote: 80 },
    { address: "::1", port: 8080, remote: 80 },
    { address: "127.0.0.1", port: 9000, remote: "metrics" },
    { address: "::1", port: 9000, remote: "metrics" },
    { address: "10.0.0.5", port: 9000, remote: "metrics" },
  ];
  assert.equal(
    formatListeners(listeners, true),
    "127.0.0.1+[::1]:8080->80,127.0.0.1+[::1]+10.0.0.5:9000->metrics",
  );
  assert.equal(formatListeners(listeners.slice(0, 1), false), "127.0.0.1:8080");
  assert.equal(formatListeners([], false), "");
});

Deno.test("kf forward warns on stderr, once per forward, when it listens beyond loopback", async () => {
  const result = await kf([
    "forward",
    "svc/api",
    "8080:80",
    "--address",
    "0.0.0.0",
    "--name",
    "api",
  ]);
  const warnings = result.stderr.split("\n").filter((line) => line.startsWith("kf: warning:"));
  assert.deepEqual(warnings, [
    "kf: warning: forward 'api' listens on 0.0.0.0, not only loopback: anyone who can reach that address can use the forward",
  ]);
});
