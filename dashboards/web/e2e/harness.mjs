// What the browser tests share: polling with a deadline, free ports, a real
// `uvr run` of its own (data directory, ClickHouse database, ports, embedded
// broker) and headless Chromium. Not a test file: node --test runs only
// *.test.mjs.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, mkdirSync, createWriteStream, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

/** until polls f until it returns a truthy value, or fails after ms; alive() throws when what it waits on died. */
export async function until(what, f, ms, every = 250, alive = () => {}) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    alive(what);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ': ' + last.message : ''}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * startUVR runs `uvr <args>` (UVR_BIN) on free ports with its own data
 * directory and ClickHouse database, its log in <out>/<name>.log. env adds
 * variables (the admin, CORS origins). Returns the base URL, the log so far,
 * alive() (throws once uvr exited) and stop() (kills it, drops its database
 * and directory).
 */
export async function startUVR({ name, args, env = {}, out }) {
  assert.ok(process.env.UVR_BIN, 'UVR_BIN: the uvr binary to test (make web-test sets it)');
  assert.ok(process.env.UVR_CLICKHOUSE_ADDR, 'UVR_CLICKHOUSE_ADDR: eval "$(deploy/services clickhouse env)"');
  mkdirSync(out, { recursive: true });
  const dataDir = mkdtempSync(join(tmpdir(), `uvr-${name}-`));
  const database = `uvr_${name.replace(/\W/g, '_')}_` + Math.random().toString(36).slice(2, 10);
  const [http, metrics, kafka] = [await freePort(), await freePort(), await freePort()];
  const log = createWriteStream(join(out, `${name}.log`));
  const all = {
    ...process.env,
    UVR_HTTP_ADDR: `127.0.0.1:${http}`,
    UVR_METRICS_ADDR: `127.0.0.1:${metrics}`,
    UVR_EMBEDDED_KAFKA_ADDR: `127.0.0.1:${kafka}`,
    UVR_DATA_DIR: dataDir,
    UVR_CLICKHOUSE_DATABASE: database,
    // The stand-in vendors of these tests listen on loopback, which uvr refuses as a
    // connector's base_url unless an operator allows it (docs/operations.md, Hardening).
    UVR_CONNECTOR_ALLOW_PRIVATE_HOSTS: '127.0.0.1',
    ...env,
  };
  // The embedded broker and the local credential store: nothing shared.
  for (const k of ['UVR_KAFKA_BROKERS', 'VAULT_ADDR', 'VAULT_TOKEN', 'VAULT_ROLE_ID', 'VAULT_SECRET_ID']) delete all[k];
  const proc = spawn(process.env.UVR_BIN, args, { env: all, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  let exit;
  for (const s of [proc.stdout, proc.stderr]) {
    s.on('data', (b) => {
      text += b;
      log.write(b);
    });
  }
  proc.on('exit', (code, sig) => (exit = sig ?? String(code)));
  return {
    base: `http://127.0.0.1:${http}`,
    log: () => text,
    alive: (what) => {
      if (exit) throw new Error(`uvr exited (${exit}) while waiting for ${what}; log in ${join(out, `${name}.log`)}`);
    },
    async stop() {
      if (!exit) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        let timer;
        await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 15_000)))]);
        clearTimeout(timer);
        if (!exit) proc.kill('SIGKILL');
      }
      if (process.env.UVR_CLICKHOUSE_HTTP_URL) {
        // Bounded: a DROP can wait behind other tests' queries on a shared server;
        // it still completes there after we stop waiting.
        await fetch(process.env.UVR_CLICKHOUSE_HTTP_URL, { method: 'POST', body: `DROP DATABASE IF EXISTS ${database}`, signal: AbortSignal.timeout(10_000) }).catch(() => {});
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** launchChromium starts Debian's Chromium headless (CHROMIUM overrides the path). */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}
