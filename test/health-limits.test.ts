// The health server's limits as plain data: which connection is closed at the
// bound, how the bound follows the open files limit, and the variables that
// tune them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, parseConfig } from "../src/config/index.js";
import { connectionBound, FD_RESERVE, openFilesLimit, parseOpenFilesLimit } from "../src/gateway/fd-limit.js";
import { HealthConnections } from "../src/gateway/health-connections.js";

class FakeSocket {
  destroyed = false;
  constructor(
    readonly name: string,
    readonly answering = false,
  ) {}
  destroy(): void {
    this.destroyed = true;
  }
}

function table(bound: number) {
  return new HealthConnections<FakeSocket>(bound, (s) => s.answering);
}

describe("health connection table at its bound", () => {
  it("admits every new connection and closes the oldest idle one of the heaviest peer", () => {
    const connections = table(4);
    const kubelet = new FakeSocket("kubelet");
    connections.admit(kubelet, "10.0.0.1");
    const flood = ["a", "b", "c"].map((name) => new FakeSocket(name));
    for (const s of flood) connections.admit(s, "10.9.9.9");
    const newcomer = new FakeSocket("newcomer");
    connections.admit(newcomer, "10.9.9.9");
    assert.deepEqual(
      [kubelet, ...flood, newcomer].filter((s) => s.destroyed).map((s) => s.name),
      ["a"],
    );
    const stats = connections.stats();
    assert.equal(stats.open, 4);
    assert.equal(stats.shed.limit, 1);
  });

  it("never closes a poller's single connection while a flood holds many, whoever connects next", () => {
    const connections = table(8);
    const kubelet = new FakeSocket("kubelet");
    connections.admit(kubelet, "10.0.0.1");
    for (let i = 0; i < 100; i++) connections.admit(new FakeSocket(`f${i}`), `10.9.9.${i % 2}`);
    connections.admit(new FakeSocket("agent"), "10.0.0.2");
    assert.equal(kubelet.destroyed, false);
    assert.equal(connections.stats().open, 8);
  });

  it("closes a connection being answered only when its peer has nothing idle", () => {
    const connections = table(3);
    const busy = new FakeSocket("busy", true);
    const idle = new FakeSocket("idle");
    connections.admit(busy, "10.9.9.9");
    connections.admit(idle, "10.9.9.9");
    connections.admit(new FakeSocket("x"), "10.0.0.1");
    connections.admit(new FakeSocket("y"), "10.9.9.9");
    assert.equal(idle.destroyed, true);
    assert.equal(busy.destroyed, false);

    const pipelines = table(3);
    const first = new FakeSocket("first", true);
    const second = new FakeSocket("second", true);
    const other = new FakeSocket("other");
    pipelines.admit(first, "10.9.9.9");
    pipelines.admit(second, "10.9.9.9");
    pipelines.admit(other, "10.0.0.1");
    pipelines.admit(new FakeSocket("next"), "10.0.0.2");
    assert.deepEqual(
      [first, second, other].map((s) => s.destroyed),
      [true, false, false],
      "the heaviest peer's oldest, as a last resort",
    );
  });

  it("forgets closed connections once, whoever closed them", () => {
    const connections = table(2);
    const socket = new FakeSocket("s");
    const held = connections.admit(socket, "10.0.0.1");
    connections.closed(held);
    connections.closed(held);
    assert.equal(connections.stats().open, 0);
    connections.admit(new FakeSocket("t"), "10.0.0.1");
    connections.admit(new FakeSocket("u"), "10.0.0.1");
    assert.equal(connections.stats().shed.limit, 0);
  });

  it("keeps finding the heaviest peer as peers come and go", () => {
    const connections = table(5);
    const a = [1, 2, 3].map((i) => connections.admit(new FakeSocket(`a${i}`), "a"));
    const b = [1, 2].map((i) => new FakeSocket(`b${i}`));
    for (const s of b) connections.admit(s, "b");
    for (const held of a) connections.closed(held);
    for (let i = 0; i < 3; i++) connections.admit(new FakeSocket(`c${i}`), "c");
    // b holds 2 and c 3: the next admission closes c's oldest, not b's.
    connections.admit(new FakeSocket("d"), "d");
    assert.deepEqual(
      b.map((s) => s.destroyed),
      [false, false],
    );
    assert.equal(connections.stats().open, 5);
  });
});

describe("connection bound from the open files limit", () => {
  const limits = (soft: string, hard: string): string =>
    [
      "Limit                     Soft Limit           Hard Limit           Units     ",
      "Max processes             95000                95000                processes ",
      `Max open files            ${soft.padEnd(20)} ${hard.padEnd(20)} files     `,
      "Max locked memory         8388608              8388608              bytes     ",
    ].join("\n");

  it("reads the soft limit Node runs with", () => {
    assert.equal(parseOpenFilesLimit(limits("1024", "1024")), 1024);
    assert.equal(parseOpenFilesLimit(limits("524288", "524288")), 524_288);
    assert.equal(parseOpenFilesLimit(limits("unlimited", "unlimited")), Number.POSITIVE_INFINITY);
    assert.equal(parseOpenFilesLimit("Max processes 1 1 processes"), undefined);
    assert.equal(
      openFilesLimit(() => "garbage"),
      1024,
      "Node's floor when the limit cannot be read",
    );
    assert.equal(
      openFilesLimit(() => {
        throw new Error("no /proc");
      }),
      1024,
    );
  });

  it("reads this process's limit from /proc", () => {
    assert.ok(openFilesLimit() >= 1024);
  });

  it("lowers HEALTH_MAX_CONNECTIONS to fit under the limit, leaving the reserve", () => {
    assert.equal(connectionBound(4096, 524_288), 4096);
    assert.equal(connectionBound(4096, 1024), 1024 - FD_RESERVE);
    assert.equal(connectionBound(4096, 1024, FD_RESERVE + 3), 1024 - FD_RESERVE - 3);
    assert.equal(connectionBound(4096, Number.POSITIVE_INFINITY), 4096);
    assert.equal(connectionBound(4096, 100), 16, "a floor, even with an absurd limit");
  });
});

describe("health server variables", () => {
  const parse = (env: Record<string, string>) => parseConfig(env, { requirePodIp: false }).health;

  it("defaults to 4096 connections, a 3 s header timeout and a 5 s keep-alive timeout", () => {
    const health = parse({});
    assert.equal(health.maxConnections, 4096);
    assert.equal(health.headerTimeoutMs, 3_000);
    assert.equal(health.keepAliveTimeoutMs, 5_000);
  });

  it("takes what an operator sets", () => {
    const health = parse({
      HEALTH_MAX_CONNECTIONS: "20000",
      HEALTH_HEADER_TIMEOUT: "500ms",
      HEALTH_KEEPALIVE_TIMEOUT: "1m",
    });
    assert.deepEqual(
      [health.maxConnections, health.headerTimeoutMs, health.keepAliveTimeoutMs],
      [20_000, 500, 60_000],
    );
  });

  for (const [name, value, problem] of [
    ["HEALTH_MAX_CONNECTIONS", "8", "is out of range"],
    ["HEALTH_MAX_CONNECTIONS", "1e4", "is not a whole decimal number"],
    ["HEALTH_HEADER_TIMEOUT", "0s", "is zero"],
    ["HEALTH_HEADER_TIMEOUT", "2m", "is longer than 1m"],
    ["HEALTH_KEEPALIVE_TIMEOUT", "50ms", "is shorter than 100ms"],
  ] as const) {
    it(`rejects ${name}=${value}: ${problem}`, () => {
      assert.throws(
        () => parse({ [name]: value }),
        (error: unknown) =>
          error instanceof ConfigError && error.message.includes(name) && error.message.includes(problem),
      );
    });
  }
});
