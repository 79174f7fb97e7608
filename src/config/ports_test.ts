import assert from "node:assert/strict";
import { formatPortMapping, parsePortMapping, PortMappingError } from "./ports.ts";

Deno.test("parsePortMapping() accepts 5000 as local=remote", () => {
  assert.deepEqual(parsePortMapping("5000"), { local: 5000, remote: 5000 });
  assert.deepEqual(parsePortMapping(5000), { local: 5000, remote: 5000 });
});

Deno.test("parsePortMapping() accepts 8888:5000", () => {
  assert.deepEqual(parsePortMapping("8888:5000"), { local: 8888, remote: 5000 });
});

Deno.test("parsePortMapping() accepts 0:5000", () => {
  assert.deepEqual(parsePortMapping("0:5000"), { local: 0, remote: 5000 });
});

Deno.test("parsePortMapping() accepts :5000 as a free local port", () => {
  assert.deepEqual(parsePortMapping(":5000"), { local: 0, remote: 5000 });
});

Deno.test("parsePortMapping() accepts a named remote port with a local port", () => {
  assert.deepEqual(parsePortMapping("9000:metrics"), { local: 9000, remote: "metrics" });
  assert.deepEqual(parsePortMapping(":metrics"), { local: 0, remote: "metrics" });
  assert.deepEqual(parsePortMapping("0:http-alt"), { local: 0, remote: "http-alt" });
});

Deno.test("parsePortMapping() accepts the port range bounds", () => {
  assert.deepEqual(parsePortMapping("1"), { local: 1, remote: 1 });
  assert.deepEqual(parsePortMapping("65535:65535"), { local: 65535, remote: 65535 });
});

Deno.test("parsePortMapping() rejects a named port without a local port", () => {
  assert.throws(() => parsePortMapping("metrics"), /named port.*9000:metrics.*:metrics/);
});

Deno.test("parsePortMapping() rejects out-of-range ports", () => {
  for (const spec of ["0", 0, "65536", 65536, "70000:80", "80:70000", "80:0", -1, 80.5]) {
    assert.throws(() => parsePortMapping(spec), PortMappingError, String(spec));
  }
  assert.throws(() => parsePortMapping("70000:80"), /local port 70000 is out of range; use 0-65535/);
  assert.throws(() => parsePortMapping("80:0"), /remote port 0 is out of range; use 1-65535/);
  assert.throws(() => parsePortMapping(80.5), /port 80.5 is not a whole number/);
});

Deno.test("parsePortMapping() rejects bad syntax", () => {
  const cases = [
    "",
    ":",
    "8080:",
    "a:b:c",
    "1:2:3",
    "http:80",
    "-1:80",
    "80:Metrics",
    "80:metrics_1",
    "80:averyveryverylongname",
    "80:-http",
    "80:http-",
    "80:ht--tp",
    "80:12-34",
    "8o8o",
  ];
  for (const spec of cases) {
    assert.throws(() => parsePortMapping(spec), PortMappingError, JSON.stringify(spec));
  }
});

Deno.test("formatPortMapping() round-trips through parsePortMapping()", () => {
  for (const spec of ["8080:80", "0:5000", "9000:metrics"]) {
    assert.equal(formatPortMapping(parsePortMapping(spec)), spec);
  }
});
