/**
 * The malformed-config corpus: each entry is a config a user could write, with every `file:line:col:
 * message` kf must print for it, in order. Each case is checked through parseConfigText and, from a real
 * file, through loadConfigFiles; both must throw ConfigErrors, a UsageError, so `kf forward -f` exits 2.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { formatError, UsageError } from "../errors.ts";
import { loadConfigFiles, parseConfigText } from "./config.ts";
import { ConfigErrors } from "./config_error.ts";

interface CorpusCase {
  name: string;
  yaml: string;
  /** Every message, as printed, for a file named kf.yaml. */
  errors: string[];
}

const CORPUS: CorpusCase[] = [
  {
    name: "unclosed flow sequence",
    yaml: "forwards:\n  - {target: svc/a, ports: [80}\n",
    errors: [
      "kf.yaml:2:31: invalid YAML: flow sequence in block collection must be sufficiently indented and end with a ]; fix the syntax here",
      "kf.yaml:2:32: invalid YAML: flow map in block collection must be sufficiently indented and end with a }; fix the syntax here",
    ],
  },
  {
    name: "unclosed quote",
    yaml: 'forwards:\n  - target: "svc/a\n    ports: [80]\n',
    errors: [
      'kf.yaml:4:1: invalid YAML: missing closing "quote; fix the syntax here',
    ],
  },
  {
    name: "duplicate top-level key",
    yaml: "namespace: a\nnamespace: b\nforwards:\n  - {target: svc/a, ports: [80]}\n",
    errors: [
      "kf.yaml:2:1: this key is already set in the same map; remove one of them",
    ],
  },
  {
    name: "duplicate forward key",
    yaml: "forwards:\n  - target: svc/a\n    target: svc/b\n    ports: [80]\n",
    errors: [
      "kf.yaml:3:5: this key is already set in the same map; remove one of them",
    ],
  },
  {
    name: "tab indentation",
    yaml: "forwards:\n\t- {target: svc/a, ports: [80]}\n",
    errors: [
      "kf.yaml:2:1: YAML does not allow tabs for indentation; indent with spaces",
    ],
  },
  {
    name: "two documents",
    yaml: "forwards:\n  - {target: svc/a, ports: [80]}\n---\nforwards: []\n",
    errors: [
      "kf.yaml:3:1: a config file holds one YAML document; remove the '---' line or split it into two files",
    ],
  },
  {
    name: "bad indentation of a mapping",
    yaml: "forwards:\n  - target: svc/a\n   ports: [80]\n",
    errors: [
      "kf.yaml:3:1: invalid YAML: sequence item without - indicator; fix the syntax here",
    ],
  },
  {
    name: "undefined alias",
    yaml: "forwards:\n  - {target: svc/a, ports: *missing}\n",
    errors: [
      "kf.yaml:2:21: 'ports' must be a list, not nothing; write e.g. ports: [8080:80, 5432]",
      "kf.yaml:2:28: alias *missing has no matching anchor &missing; define it first",
    ],
  },
  {
    name: "merge key",
    yaml: "base: &b {namespace: dev}\nforwards:\n  - <<: *b\n    target: svc/a\n    ports: [80]\n",
    errors: [
      "kf.yaml:1:1: unknown key 'base'; valid keys here are 'namespace', 'context', 'kubeconfig', 'address', 'podWaitTimeout', 'streamIdleTimeout', 'transport', 'protocol', 'balance', 'logRequests', 'forwards'",
      "kf.yaml:3:5: merge keys ('<<') are not supported; put shared settings at the top level instead",
    ],
  },
  {
    name: "empty file",
    yaml: "",
    errors: [
      "kf.yaml:1:1: the config file is empty; add a 'forwards:' list, e.g. forwards: [{target: svc/api, ports: [8080:80]}]",
    ],
  },
  {
    name: "only a comment",
    yaml: "# nothing here\n",
    errors: [
      "kf.yaml:1:1: the config file is empty; add a 'forwards:' list, e.g. forwards: [{target: svc/api, ports: [8080:80]}]",
    ],
  },
  {
    name: "top-level list",
    yaml: "- target: svc/a\n  ports: [80]\n",
    errors: [
      "kf.yaml:1:1: the top level must be a map with a 'forwards:' list, not a list; start the file with forwards:",
    ],
  },
  {
    name: "top-level string",
    yaml: "forwards\n",
    errors: [
      "kf.yaml:1:1: the top level must be a map with a 'forwards:' list, not the string \"forwards\"; start the file with forwards:",
    ],
  },
  {
    name: "top-level number",
    yaml: "42\n",
    errors: [
      "kf.yaml:1:1: the top level must be a map with a 'forwards:' list, not the number 42; start the file with forwards:",
    ],
  },
  {
    name: "missing forwards",
    yaml: "namespace: dev\n",
    errors: [
      "kf.yaml:1:1: missing 'forwards'; add a list like forwards: [{target: svc/api, ports: [8080:80]}]",
    ],
  },
  {
    name: "forwards empty list",
    yaml: "forwards: []\n",
    errors: [
      "kf.yaml:1:11: 'forwards' is empty; add at least one forward like {target: svc/api, ports: [8080:80]}",
    ],
  },
  {
    name: "forwards null",
    yaml: "forwards:\n",
    errors: [
      "kf.yaml:1:1: 'forwards' must be a list, not nothing; write each forward as '- target: ...' below it",
    ],
  },
  {
    name: "forwards a map",
    yaml: "forwards:\n  target: svc/a\n  ports: [80]\n",
    errors: [
      "kf.yaml:2:3: 'forwards' must be a list, not a map; write each forward as '- target: ...' below it",
    ],
  },
  {
    name: "forwards a string",
    yaml: "forwards: svc/a\n",
    errors: [
      "kf.yaml:1:11: 'forwards' must be a list, not the string \"svc/a\"; write each forward as '- target: ...' below it",
    ],
  },
  {
    name: "forward is a string",
    yaml: "forwards:\n  - svc/a\n",
    errors: [
      "kf.yaml:2:5: each forward must be a map, not the string \"svc/a\"; write e.g. '- {target: svc/api, ports: [8080:80]}'",
    ],
  },
  {
    name: "forward is a list",
    yaml: "forwards:\n  - [svc/a, 80]\n",
    errors: [
      "kf.yaml:2:5: each forward must be a map, not a list; write e.g. '- {target: svc/api, ports: [8080:80]}'",
    ],
  },
  {
    name: "forward is null",
    yaml: "forwards:\n  -\n",
    errors: [
      "kf.yaml:2:4: each forward must be a map, not nothing; write e.g. '- {target: svc/api, ports: [8080:80]}'",
    ],
  },
  {
    name: "no target or selector",
    yaml: "forwards:\n  - name: a\n    ports: [80]\n",
    errors: [
      "kf.yaml:2:5: forward has neither 'target' nor 'selector'; add e.g. target: svc/api or selector: app=api",
    ],
  },
  {
    name: "both target and selector",
    yaml: "forwards:\n  - target: svc/a\n    selector: app=a\n    ports: [80]\n",
    errors: [
      "kf.yaml:3:5: both 'target' and 'selector' are set; keep one: 'target' for a named object, 'selector' for any matching pod",
    ],
  },
  {
    name: "selector without a name to take",
    yaml: "forwards:\n  - selector: '!canary'\n    ports: [80]\n",
    errors: [
      "kf.yaml:2:5: forward has no 'name' and its selector has no key=value to take one from; add e.g. name: db",
    ],
  },
  {
    name: "unknown target kind",
    yaml: "forwards:\n  - {target: job/a, ports: [80]}\n",
    errors: [
      'kf.yaml:2:14: invalid target "job/a": kind "job" is not supported; use svc/NAME, deploy/NAME, sts/NAME, rs/NAME, pod/NAME or a bare pod name',
    ],
  },
  {
    name: "target with two slashes",
    yaml: "forwards:\n  - {target: svc/a/b, ports: [80]}\n",
    errors: [
      "kf.yaml:2:14: invalid target \"svc/a/b\": expected KIND/NAME with a single '/'; write e.g. svc/NAME, deploy/NAME, sts/NAME, rs/NAME, pod/NAME or a bare pod name",
    ],
  },
  {
    name: "target with an empty name",
    yaml: "forwards:\n  - {target: svc/, ports: [80]}\n",
    errors: [
      "kf.yaml:2:14: invalid target \"svc/\": the name after '/' is missing; write e.g. svc/api",
    ],
  },
  {
    name: "target name not DNS",
    yaml: "forwards:\n  - {target: svc/API_1, ports: [80]}\n",
    errors: [
      "kf.yaml:2:14: invalid target \"svc/API_1\": name \"API_1\" is not a valid Kubernetes name; use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
    ],
  },
  {
    name: "target empty string",
    yaml: "forwards:\n  - {target: '', ports: [80]}\n",
    errors: [
      'kf.yaml:2:14: invalid target "": it is empty; write e.g. svc/api or pod/web-0',
    ],
  },
  {
    name: "target a number",
    yaml: "forwards:\n  - {target: 5, ports: [80]}\n",
    errors: [
      "kf.yaml:2:14: 'target' must be a string like svc/api, not the number 5; quote it: target: \"5\"",
    ],
  },
  {
    name: "target a list",
    yaml: "forwards:\n  - {target: [svc/a], ports: [80]}\n",
    errors: [
      "kf.yaml:2:14: 'target' must be a string like svc/api, not a list",
    ],
  },
  {
    name: "selector unbalanced",
    yaml: "forwards:\n  - {name: a, selector: 'app in (a,b', ports: [80]}\n",
    errors: [
      "kf.yaml:2:25: invalid selector \"app in (a,b\": a '(' is not closed; write set values as key in (a,b)",
    ],
  },
  {
    name: "selector empty requirement",
    yaml: "forwards:\n  - {name: a, selector: 'app=a,,tier=b', ports: [80]}\n",
    errors: [
      "kf.yaml:2:25: invalid selector \"app=a,,tier=b\": it has an empty requirement between commas; remove the extra ','",
    ],
  },
  {
    name: "selector empty key",
    yaml: "forwards:\n  - {name: a, selector: '=a', ports: [80]}\n",
    errors: [
      'kf.yaml:2:25: invalid selector "=a": a label key is empty; write requirements like app=web',
    ],
  },
  {
    name: "selector not a string",
    yaml: "forwards:\n  - {name: a, selector: {app: a}, ports: [80]}\n",
    errors: [
      "kf.yaml:2:25: 'selector' must be a string like app=api, not a map",
    ],
  },
  {
    name: "no ports",
    yaml: "forwards:\n  - target: svc/a\n",
    errors: [
      "kf.yaml:2:5: forward has no 'ports'; add e.g. ports: [8080:80] (LOCAL:REMOTE)",
    ],
  },
  {
    name: "ports empty",
    yaml: "forwards:\n  - {target: svc/a, ports: []}\n",
    errors: [
      "kf.yaml:2:28: 'ports' is empty; add at least one, e.g. ports: [8080:80]",
    ],
  },
  {
    name: "ports a scalar",
    yaml: "forwards:\n  - {target: svc/a, ports: 80}\n",
    errors: [
      "kf.yaml:2:28: 'ports' must be a list, not the number 80; write e.g. ports: [8080:80, 5432]",
    ],
  },
  {
    name: "ports null",
    yaml: "forwards:\n  - target: svc/a\n    ports:\n",
    errors: [
      "kf.yaml:3:5: 'ports' must be a list, not nothing; write e.g. ports: [8080:80, 5432]",
    ],
  },
  {
    name: "port out of range",
    yaml: "forwards:\n  - {target: svc/a, ports: [70000]}\n",
    errors: [
      'kf.yaml:2:29: invalid port "70000": port 70000 is out of range; use 1-65535',
    ],
  },
  {
    name: "local port out of range",
    yaml: "forwards:\n  - {target: svc/a, ports: ['65536:80']}\n",
    errors: [
      'kf.yaml:2:29: invalid port "65536:80": local port 65536 is out of range; use 0-65535 (0 picks a free port)',
    ],
  },
  {
    name: "remote port zero",
    yaml: "forwards:\n  - {target: svc/a, ports: ['8080:0']}\n",
    errors: [
      'kf.yaml:2:29: invalid port "8080:0": remote port 0 is out of range; use 1-65535',
    ],
  },
  {
    name: "negative port",
    yaml: "forwards:\n  - {target: svc/a, ports: [-1]}\n",
    errors: [
      'kf.yaml:2:29: invalid port "-1": port -1 is out of range; use 1-65535',
    ],
  },
  {
    name: "port with two colons",
    yaml: "forwards:\n  - {target: svc/a, ports: ['1:2:3']}\n",
    errors: [
      "kf.yaml:2:29: invalid port \"1:2:3\": expected LOCAL:REMOTE with a single ':'; write e.g. 8080:80",
    ],
  },
  {
    name: "named port without local",
    yaml: "forwards:\n  - {target: svc/a, ports: [http]}\n",
    errors: [
      'kf.yaml:2:29: invalid port "http": "http" is a named port, so the local port cannot default to it; write LOCAL:http (e.g. 9000:http) or :http for a free local port',
    ],
  },
  {
    name: "bad port name",
    yaml: "forwards:\n  - {target: svc/a, ports: ['8080:HTTP_PORT']}\n",
    errors: [
      "kf.yaml:2:29: invalid port \"8080:HTTP_PORT\": remote port \"HTTP_PORT\" is neither a port number nor a valid port name; names have at most 15 lowercase letters, digits and '-', as in the pod's or service's 'ports[].name'",
    ],
  },
  {
    name: "port a map",
    yaml: "forwards:\n  - {target: svc/a, ports: [{local: 1, remote: 2}]}\n",
    errors: [
      'kf.yaml:2:29: a port must be a number or a string like "8080:80", not a map',
    ],
  },
  {
    name: "port a float",
    yaml: "forwards:\n  - {target: svc/a, ports: [80.5]}\n",
    errors: [
      'kf.yaml:2:29: invalid port "80.5": port 80.5 is not a whole number; write e.g. 8080:80 or 5432',
    ],
  },
  {
    name: "port empty string",
    yaml: "forwards:\n  - {target: svc/a, ports: ['']}\n",
    errors: [
      'kf.yaml:2:29: invalid port "": it is empty; write e.g. 8080:80 or 5432',
    ],
  },
  {
    name: "one bad port of two drops the forward",
    yaml: "forwards:\n  - {target: svc/a, ports: [80, x]}\n",
    errors: [
      'kf.yaml:2:33: invalid port "x": "x" is a named port, so the local port cannot default to it; write LOCAL:x (e.g. 9000:x) or :x for a free local port',
    ],
  },
  {
    name: "bad name",
    yaml: "forwards:\n  - {name: 'a b', target: svc/a, ports: [80]}\n",
    errors: [
      "kf.yaml:2:12: invalid name \"a b\": use letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
    ],
  },
  {
    name: "name starts with a dash",
    yaml: "forwards:\n  - {name: -a, target: svc/a, ports: [80]}\n",
    errors: [
      "kf.yaml:2:12: invalid name \"-a\": use letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
    ],
  },
  {
    name: "name too long",
    yaml: `forwards:\n  - {name: ${"a".repeat(254)}, target: svc/a, ports: [80]}\n`,
    errors: [
      `kf.yaml:2:12: invalid name "${"a".repeat(254)}": it is longer than 253 characters`,
    ],
  },
  {
    name: "name a number",
    yaml: "forwards:\n  - {name: 5, target: svc/a, ports: [80]}\n",
    errors: [
      "kf.yaml:2:12: 'name' must be a string like api, not the number 5; quote it: name: \"5\"",
    ],
  },
  {
    name: "duplicate names",
    yaml: "forwards:\n  - {name: a, target: svc/a, ports: [80]}\n  - {name: a, target: svc/b, ports: [81]}\n",
    errors: [
      'kf.yaml:3:12: forward name "a" is already used at kf.yaml:2:12; names must be unique, rename one',
    ],
  },
  {
    name: "duplicate derived names",
    yaml: "forwards:\n  - {target: svc/a, ports: [80]}\n  - {target: deploy/a, ports: [81]}\n",
    errors: [
      "kf.yaml:3:14: forward name \"a\" (taken from its target) is already used at kf.yaml:2:14; add a unique 'name:'",
    ],
  },
  {
    name: "duplicate local port",
    yaml:
      "forwards:\n  - {name: a, target: svc/a, ports: [8080]}\n  - {name: b, target: svc/b, ports: ['8080:80']}\n",
    errors: [
      'kf.yaml:3:38: local port 8080 on localhost is already used by forward "a" at kf.yaml:2:38; pick another local port, or 0 for a free one',
    ],
  },
  {
    name: "local port twice in one forward",
    yaml: "forwards:\n  - {target: svc/a, ports: [8080, '8080:81']}\n",
    errors: [
      'kf.yaml:2:35: local port 8080 on localhost is already used by forward "a" at kf.yaml:2:29; pick another local port, or 0 for a free one',
    ],
  },
  {
    name: "local port on 0.0.0.0 and loopback",
    yaml:
      "forwards:\n  - {name: a, target: svc/a, ports: [80], address: 0.0.0.0}\n  - {name: b, target: svc/b, ports: [80]}\n",
    errors: [
      'kf.yaml:3:38: local port 80 on localhost is already used by forward "a" at kf.yaml:2:38; pick another local port, or 0 for a free one',
    ],
  },
  {
    name: "bad namespace",
    yaml: "namespace: Dev\nforwards:\n  - {target: svc/a, ports: [80]}\n",
    errors: [
      "kf.yaml:1:12: invalid namespace \"Dev\": use up to 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
    ],
  },
  {
    name: "namespace too long",
    yaml: `forwards:\n  - {target: svc/a, ports: [80], namespace: ${"a".repeat(64)}}\n`,
    errors: [
      `kf.yaml:2:45: invalid namespace "${
        "a".repeat(64)
      }": use up to 63 lowercase letters, digits and '-', starting and ending with a letter or digit`,
    ],
  },
  {
    name: "namespace a number",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], namespace: 5}\n",
    errors: [
      "kf.yaml:2:45: 'namespace' must be a string like default, not the number 5; quote it: namespace: \"5\"",
    ],
  },
  {
    name: "namespace null",
    yaml: "namespace:\nforwards:\n  - {target: svc/a, ports: [80]}\n",
    errors: [
      "kf.yaml:1:1: 'namespace' must be a string like default, not nothing",
    ],
  },
  {
    name: "empty context",
    yaml: "context: ''\nforwards:\n  - {target: svc/a, ports: [80]}\n",
    errors: [
      'kf.yaml:1:10: invalid context "": it is empty; name one from kubectl config get-contexts',
    ],
  },
  {
    name: "context true",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], context: true}\n",
    errors: [
      "kf.yaml:2:43: 'context' must be a string like dev (see kubectl config get-contexts), not the boolean true; quote it: context: \"true\"",
    ],
  },
  {
    name: "empty kubeconfig",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], kubeconfig: ''}\n",
    errors: [
      'kf.yaml:2:46: invalid kubeconfig "": it is empty; give a file path',
    ],
  },
  {
    name: "kubeconfig a list",
    yaml: "kubeconfig: [a, b]\nforwards:\n  - {target: svc/a, ports: [80]}\n",
    errors: [
      "kf.yaml:1:13: 'kubeconfig' must be a string like ~/.kube/config, not a list",
    ],
  },
  {
    name: "bad address",
    yaml: "address: my-host\nforwards:\n  - {target: svc/a, ports: [80]}\n",
    errors: [
      'kf.yaml:1:10: invalid address "my-host": use an IP address such as 127.0.0.1, ::1 or 0.0.0.0 (every interface), or localhost',
    ],
  },
  {
    name: "address a number",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], address: 127}\n",
    errors: [
      "kf.yaml:2:43: 'address' must be a string like 127.0.0.1, not the number 127; quote it: address: \"127\"",
    ],
  },
  {
    name: "address with a port",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], address: '127.0.0.1:80'}\n",
    errors: [
      'kf.yaml:2:43: invalid address "127.0.0.1:80": use an IP address such as 127.0.0.1, ::1 or 0.0.0.0 (every interface), or localhost',
    ],
  },
  {
    name: "bad duration",
    yaml: "podWaitTimeout: soon\nforwards:\n  - {target: svc/a, ports: [80]}\n",
    errors: [
      'kf.yaml:1:17: invalid podWaitTimeout "soon": "soon" is not a number with a unit; write e.g. 30s, 500ms, 2m or 1m30s',
    ],
  },
  {
    name: "negative duration",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], podWaitTimeout: -5s}\n",
    errors: [
      'kf.yaml:2:50: invalid podWaitTimeout "-5s": "-5s" is not a number with a unit; write e.g. 30s, 500ms, 2m or 1m30s',
    ],
  },
  {
    name: "duration unit unknown",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], podWaitTimeout: 5d}\n",
    errors: [
      'kf.yaml:2:50: invalid podWaitTimeout "5d": "5d" is not a number with a unit; write e.g. 30s, 500ms, 2m or 1m30s',
    ],
  },
  {
    name: "duration a list",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], podWaitTimeout: [5s]}\n",
    errors: [
      "kf.yaml:2:50: 'podWaitTimeout' must be a duration like 30s, not a list",
    ],
  },
  {
    name: "duration null",
    yaml: "forwards:\n  - target: svc/a\n    ports: [80]\n    podWaitTimeout:\n",
    errors: [
      "kf.yaml:4:5: 'podWaitTimeout' must be a duration like 30s, not nothing",
    ],
  },
  {
    name: "duration too long",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], podWaitTimeout: 1000h}\n",
    errors: [
      'kf.yaml:2:50: invalid podWaitTimeout "1000h": it is longer than 2147483647 ms (about 24 days); use a shorter one',
    ],
  },
  {
    name: "unknown transport",
    yaml: "transport: quic\nforwards:\n  - {target: svc/a, ports: [80]}\n",
    errors: [
      'kf.yaml:1:12: invalid transport "quic": use one of: auto, websocket, spdy',
    ],
  },
  {
    name: "transport a number",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], transport: 1}\n",
    errors: [
      "kf.yaml:2:45: 'transport' must be a string like auto, not the number 1; quote it: transport: \"1\"",
    ],
  },
  {
    name: "unknown top-level key",
    yaml: "verbose: true\nforwards:\n  - {target: svc/a, ports: [80]}\n",
    errors: [
      "kf.yaml:1:1: unknown key 'verbose'; valid keys here are 'namespace', 'context', 'kubeconfig', 'address', 'podWaitTimeout', 'streamIdleTimeout', 'transport', 'protocol', 'balance', 'logRequests', 'forwards'",
    ],
  },
  {
    name: "top-level key typo",
    yaml: "namepsace: dev\nforwards:\n  - {target: svc/a, ports: [80]}\n",
    errors: [
      "kf.yaml:1:1: unknown key 'namepsace'; did you mean 'namespace'?",
    ],
  },
  {
    name: "forward key typo",
    yaml: "forwards:\n  - {target: svc/a, prots: [80]}\n",
    errors: [
      "kf.yaml:2:5: forward has no 'ports'; add e.g. ports: [8080:80] (LOCAL:REMOTE)",
      "kf.yaml:2:21: unknown key 'prots'; did you mean 'ports'?",
    ],
  },
  {
    name: "key in wrong case",
    yaml: "forwards:\n  - {Target: svc/a, ports: [80]}\n",
    errors: [
      "kf.yaml:2:5: forward has neither 'target' nor 'selector'; add e.g. target: svc/api or selector: app=api",
      "kf.yaml:2:6: unknown key 'Target'; did you mean 'target'?",
    ],
  },
  {
    name: "kubectl alias key",
    yaml: "forwards:\n  - {service: svc/a, ports: [80]}\n",
    errors: [
      "kf.yaml:2:5: forward has neither 'target' nor 'selector'; add e.g. target: svc/api or selector: app=api",
      "kf.yaml:2:6: unknown key 'service'; did you mean 'target'?",
    ],
  },
  {
    name: "alias key ns",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], ns: dev}\n",
    errors: [
      "kf.yaml:2:34: unknown key 'ns'; did you mean 'namespace'?",
    ],
  },
  {
    name: "forward key at top level",
    yaml: "target: svc/a\nforwards:\n  - {target: svc/a, ports: [80]}\n",
    errors: [
      "kf.yaml:1:1: 'target' belongs to a forward; move it into an entry under 'forwards:'",
    ],
  },
  {
    name: "top-level key in a forward",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], forwards: []}\n",
    errors: [
      "kf.yaml:2:34: 'forwards' is only valid at the top level of the file; move it there",
    ],
  },
  {
    name: "non-string key",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], 1: x}\n",
    errors: [
      "kf.yaml:2:34: keys must be plain words like 'name'",
    ],
  },
  {
    name: "several problems reported at once, in order",
    yaml: "namespace: Bad\nforwards:\n  - {target: job/a, ports: [x]}\n  - {name: b, prots: [1]}\n",
    errors: [
      "kf.yaml:1:12: invalid namespace \"Bad\": use up to 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
      'kf.yaml:3:14: invalid target "job/a": kind "job" is not supported; use svc/NAME, deploy/NAME, sts/NAME, rs/NAME, pod/NAME or a bare pod name',
      'kf.yaml:3:29: invalid port "x": "x" is a named port, so the local port cannot default to it; write LOCAL:x (e.g. 9000:x) or :x for a free local port',
      "kf.yaml:4:5: forward has neither 'target' nor 'selector'; add e.g. target: svc/api or selector: app=api",
      "kf.yaml:4:5: forward has no 'ports'; add e.g. ports: [8080:80] (LOCAL:REMOTE)",
      "kf.yaml:4:15: unknown key 'prots'; did you mean 'ports'?",
    ],
  },
  {
    name: "address list with a non-string item",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], address: [localhost, 5]}\n",
    errors: ["kf.yaml:2:55: each 'address' entry must be a string like 127.0.0.1, not the number 5"],
  },
  {
    name: "address list with an empty entry",
    yaml: "address: 'localhost,,10.0.0.5'\nforwards:\n  - {target: svc/a, ports: [80]}\n",
    errors: [
      `kf.yaml:1:10: invalid address "localhost,,10.0.0.5": it has an empty entry between commas; remove the extra ','`,
    ],
  },
  {
    name: "address listed twice",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], address: [10.0.0.5, 10.0.0.5]}\n",
    errors: [
      'kf.yaml:2:43: invalid address "10.0.0.5,10.0.0.5": 10.0.0.5 is listed twice; list each address once',
    ],
  },
  {
    name: "localhost and 127.0.0.1 overlap",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], address: 'localhost, 127.0.0.1'}\n",
    errors: [
      'kf.yaml:2:43: invalid address "localhost, 127.0.0.1": localhost and 127.0.0.1 overlap: localhost is 127.0.0.1 and ::1; keep one',
    ],
  },
  {
    name: "address an empty list",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], address: []}\n",
    errors: [
      'kf.yaml:2:43: invalid address "": it is empty; use an IP address such as 127.0.0.1, ::1 or 0.0.0.0 (every interface), or localhost',
    ],
  },
  {
    name: "address list with a bad entry",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], address: [localhost, my-host]}\n",
    errors: [
      'kf.yaml:2:43: invalid address "localhost,my-host": "my-host" is not an address; use an IP address such as 127.0.0.1, ::1 or 0.0.0.0 (every interface), or localhost',
    ],
  },
  {
    name: "wildcard and a specific address overlap",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], address: '0.0.0.0,10.0.0.5'}\n",
    errors: [
      'kf.yaml:2:43: invalid address "0.0.0.0,10.0.0.5": 0.0.0.0 and 10.0.0.5 overlap: 0.0.0.0 already listens on every IPv4 address; keep one',
    ],
  },
  {
    name: "address a map",
    yaml: "forwards:\n  - {target: svc/a, ports: [80], address: {ip: 10.0.0.5}}\n",
    errors: ["kf.yaml:2:43: 'address' must be a string like 127.0.0.1, not a map"],
  },
  {
    name: "a default port clashes with ::1 because localhost is both loopbacks",
    yaml:
      "forwards:\n  - {name: a, target: svc/a, ports: [8080]}\n  - {name: b, target: svc/b, ports: [8080], address: '::1'}\n",
    errors: [
      'kf.yaml:3:38: local port 8080 on ::1 is already used by forward "a" at kf.yaml:2:38; pick another local port, or 0 for a free one',
    ],
  },
];

function configErrors(fn: () => unknown): ConfigErrors {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigErrors, `expected ConfigErrors, got ${error}`);
    return error;
  }
  assert.fail("expected the config to be rejected");
}

/** What every rejected config must look like to the CLI: exit 2, one positioned line per problem, no hint. */
function assertReported(error: ConfigErrors, expected: string[], label: string): void {
  assert.ok(error instanceof UsageError, label);
  assert.equal(error.exitCode, 2, label);
  assert.deepEqual(error.errors.map((e) => e.message), expected, label);
  assert.equal(formatError(error), expected.join("\n"), label);
  for (const e of error.errors) {
    assert.equal(e.message, `${e.file}:${e.line}:${e.column}: ${e.reason}`, label);
    assert.ok(e.line >= 1 && e.column >= 1, label);
  }
}

Deno.test("the malformed-config corpus has at least 50 distinct cases", () => {
  assert.ok(CORPUS.length >= 50, `${CORPUS.length} cases`);
  assert.equal(new Set(CORPUS.map((c) => c.name)).size, CORPUS.length, "case names are unique");
  assert.equal(new Set(CORPUS.map((c) => c.yaml)).size, CORPUS.length, "no config appears twice");
  for (const c of CORPUS) assert.ok(c.errors.length > 0, c.name);
});

Deno.test("parseConfigText() reports each corpus case at its positions, as a usage error", () => {
  for (const c of CORPUS) {
    assertReported(
      configErrors(() => parseConfigText(c.yaml, "kf.yaml", { homeDir: "/home/me" })),
      c.errors,
      c.name,
    );
  }
});

Deno.test("loadConfigFiles() reports each corpus case from a real file, named as given", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const c of CORPUS) {
      const file = join(dir, "kf.yaml");
      await Deno.writeTextFile(file, c.yaml);
      let error: unknown;
      await loadConfigFiles([file], { homeDir: "/home/me" }).catch((e) => error = e);
      assert.ok(error instanceof ConfigErrors, `${c.name}: ${error}`);
      assertReported(error, c.errors.map((m) => m.replaceAll("kf.yaml:", `${file}:`)), c.name);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfigFiles() reports problems across files in file order, each at its own file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = join(dir, "a.yaml");
    const b = join(dir, "b.yaml");
    await Deno.writeTextFile(
      a,
      "forwards:\n  - {name: api, target: svc/api, ports: [8080]}\n  - {target: job/x, ports: [1]}\n",
    );
    await Deno.writeTextFile(
      b,
      "namespace: Bad\nforwards:\n  - {name: api, target: svc/other, ports: [8080]}\n",
    );
    let error: unknown;
    await loadConfigFiles([b, a]).catch((e) => error = e);
    assert.ok(error instanceof ConfigErrors);
    assertReported(error, [
      `${b}:1:12: invalid namespace "Bad": use up to 63 lowercase letters, digits and '-', starting and ending with a letter or digit`,
      `${a}:2:12: forward name "api" is already used at ${b}:3:12; names must be unique, rename one`,
      `${a}:2:42: local port 8080 on localhost is already used by forward "api" at ${b}:3:44; pick another local port, or 0 for a free one`,
      `${a}:3:14: invalid target "job/x": kind "job" is not supported; use svc/NAME, deploy/NAME, sts/NAME, rs/NAME, pod/NAME or a bare pod name`,
    ], "two files");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
