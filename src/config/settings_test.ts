import assert from "node:assert/strict";
import { UsageError } from "../errors.ts";
import { adHocForward, parseConfigText } from "./config.ts";
import { addressesOverlap, isLoopback, listenHosts, parseAddresses, settingsFromFlags } from "./settings.ts";

Deno.test("parseAddresses() reads one address or a comma-separated list, kubectl style", () => {
  assert.deepEqual(parseAddresses("localhost"), { value: ["localhost"] });
  assert.deepEqual(parseAddresses("localhost,10.0.0.5"), { value: ["localhost", "10.0.0.5"] });
  assert.deepEqual(parseAddresses(" 127.0.0.2 , ::1 "), { value: ["127.0.0.2", "::1"] });
  assert.deepEqual(parseAddresses("FE80::1"), { value: ["fe80::1"] });
});

Deno.test("parseAddresses() rejects names, empty entries and addresses that overlap", () => {
  const problem = (text: string) => {
    const result = parseAddresses(text);
    assert.ok("problem" in result, text);
    return result.problem;
  };
  assert.match(problem(""), /^it is empty; use an IP address/);
  assert.match(problem("my-host"), /^use an IP address such as 127\.0\.0\.1/);
  assert.match(problem("localhost,my-host"), /^"my-host" is not an address/);
  assert.match(problem("localhost,"), /empty entry between commas/);
  assert.match(problem("::1,::1"), /::1 is listed twice/);
  assert.match(problem("localhost,::1"), /localhost and ::1 overlap: localhost is 127\.0\.0\.1 and ::1/);
  assert.match(problem("10.0.0.5,::"), /:: already listens on every address/);
  assert.match(problem("0.0.0.0,127.0.0.1"), /0\.0\.0\.0 already listens on every IPv4 address/);
  // different families do not collide on Linux or macOS
  assert.deepEqual(parseAddresses("0.0.0.0,::1"), { value: ["0.0.0.0", "::1"] });
});

Deno.test("listenHosts() makes localhost both loopbacks, ::1 only where the host has it", () => {
  assert.deepEqual(listenHosts(["localhost", "10.0.0.5"]), [
    { hostname: "127.0.0.1", skipIfUnavailable: false },
    { hostname: "::1", skipIfUnavailable: true },
    { hostname: "10.0.0.5", skipIfUnavailable: false },
  ]);
  assert.deepEqual(listenHosts(["::1"]), [{ hostname: "::1", skipIfUnavailable: false }]);
});

Deno.test("isLoopback() and addressesOverlap() know what localhost and the wildcards cover", () => {
  for (const address of ["localhost", "127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"]) {
    assert.ok(isLoopback(address), address);
  }
  for (const address of ["0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "fe80::1"]) {
    assert.ok(!isLoopback(address), address);
  }
  assert.ok(addressesOverlap(["localhost"], ["::1"]));
  assert.ok(addressesOverlap(["localhost"], ["0.0.0.0"]));
  assert.ok(addressesOverlap(["10.0.0.5"], ["::"]));
  assert.ok(!addressesOverlap(["localhost"], ["127.0.0.2"]));
  assert.ok(!addressesOverlap(["10.0.0.5", "::1"], ["10.0.0.6", "127.0.0.1"]));
});

Deno.test("the default address is localhost, from flags and from files", () => {
  assert.deepEqual(adHocForward({ target: "svc/a", ports: ["80"] }).addresses, ["localhost"]);
  const [spec] = parseConfigText("forwards:\n  - {target: svc/a, ports: [80]}\n", "kf.yaml");
  assert.deepEqual(spec.addresses, ["localhost"]);
});

Deno.test("--address and address: take a list; YAML also a sequence; top-level lists are inherited", () => {
  assert.deepEqual(
    adHocForward({ target: "svc/a", ports: ["80"], address: "localhost,10.0.0.5" }).addresses,
    [
      "localhost",
      "10.0.0.5",
    ],
  );
  const specs = parseConfigText(
    `address: [127.0.0.1, "::1"]
forwards:
  - {name: a, target: svc/a, ports: [80]}
  - {name: b, target: svc/b, ports: [80], address: "127.0.0.2, 10.0.0.5"}
`,
    "kf.yaml",
  );
  assert.deepEqual(specs.map((s) => s.addresses), [["127.0.0.1", "::1"], ["127.0.0.2", "10.0.0.5"]]);
  assert.throws(
    () => settingsFromFlags({ address: "localhost,localhost" }),
    (error: unknown) =>
      error instanceof UsageError && error.exitCode === 2 &&
      error.message ===
        'Cannot use --address "localhost,localhost": localhost is listed twice; list each address once',
  );
});
