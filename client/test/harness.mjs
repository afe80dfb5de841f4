// The test gateway: the Caddy built from this repository, in sandbox mode,
// in front of an upstream app that records the headers it was sent. No
// network but loopback.
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import assert from 'node:assert/strict'

import { WxAuthError } from '../src/index.js'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

// Ports other engineers' tests use: never ours.
const RESERVED = new Set([2019, 2999, 3000, 3001])

export async function freePort() {
  for (;;) {
    const port = await new Promise((ok, fail) => {
      const srv = net.createServer()
      srv.once('error', fail)
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address()
        srv.close(() => ok(port))
      })
    })
    if (!RESERVED.has(port)) return port
  }
}

// caddyBinary is $WXAUTH_CADDY (test.sh builds it once), or a build of
// ./cmd/caddy made now. No Go and no binary is a failure, not a skip.
export function caddyBinary() {
  const given = process.env.WXAUTH_CADDY
  if (given) {
    if (!existsSync(given)) throw new Error(`WXAUTH_CADDY=${given} does not exist`)
    return given
  }
  const dir = mkdtempSync(join(tmpdir(), 'wxauth-client-caddy-'))
  const bin = join(dir, 'caddy')
  execFileSync('go', ['build', '-o', bin, './cmd/caddy'], { cwd: repoRoot, stdio: 'inherit' })
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  return bin
}

// startUpstream is the app behind the gateway. It records every request
// (method, path, headers) and answers with the identity headers it got.
// /flaky?key=K&retry_after=N answers 429 with Retry-After N the first
// time for each K, then 200. /always-401 answers a gateway-like 401
// token_expired every time.
export async function startUpstream() {
  const requests = []
  const flaked = new Set()
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const url = new URL(req.url, 'http://upstream')
      const rec = { method: req.method, path: url.pathname, query: url.search, headers: req.headers }
      requests.push(rec)
      if (url.pathname === '/always-401') {
        res.writeHead(401, { 'Content-Type': 'application/json' })
        res.end(JSON.stringify({ error: 'token_expired', message: 'the app says so, every time' }))
        return
      }
      if (url.pathname === '/flaky') {
        const key = url.searchParams.get('key')
        if (!flaked.has(key)) {
          flaked.add(key)
          res.writeHead(429, { 'Content-Type': 'application/json', 'Retry-After': url.searchParams.get('retry_after') })
          res.end(JSON.stringify({ error: 'slow_down' }))
          return
        }
      }
      const wx = {}
      for (const [k, v] of Object.entries(req.headers)) if (k.startsWith('x-wx-')) wx[k] = v
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ path: url.pathname, wx, authorization: req.headers.authorization || null }))
    })
  })
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok))
  return {
    port: server.address().port,
    requests,
    /** The requests to path, in order. */
    to: (path) => requests.filter((r) => r.path === path),
    close: () => new Promise((ok) => { server.closeAllConnections?.(); server.close(() => ok()) }),
  }
}

// startGateway runs Caddy with one site per entry of sites, each a wxauth
// block (its lines given) in front of the upstream. It answers the sites'
// base URLs, the log, and stop().
export async function startGateway(sites, upstreamPort) {
  const bin = caddyBinary()
  const dir = mkdtempSync(join(tmpdir(), 'wxauth-client-gw-'))
  const adminPort = await freePort()
  const ports = []
  for (let i = 0; i < sites.length; i++) ports.push(await freePort())
  const caddyfile = [
    '{',
    `\tadmin 127.0.0.1:${adminPort}`,
    '\tpersist_config off',
    `\tstorage file_system ${join(dir, 'storage')}`,
    '}',
    ...sites.flatMap((lines, i) => [
      `http://127.0.0.1:${ports[i]} {`,
      '\twxauth {',
      ...lines.map((l) => '\t\t' + l),
      '\t}',
      `\treverse_proxy 127.0.0.1:${upstreamPort}`,
      '}',
    ]),
    '',
  ].join('\n')
  const config = join(dir, 'Caddyfile')
  writeFileSync(config, caddyfile)

  const log = []
  const proc = spawn(bin, ['run', '--config', config, '--adapter', 'caddyfile'], {
    cwd: dir,
    env: { ...process.env, HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config') },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let exited = null
  proc.on('exit', (code, signal) => { exited = { code, signal } })
  // Should the test process end without stop() (a crash), Caddy goes too.
  const orphan = () => { if (exited === null) proc.kill('SIGKILL') }
  process.on('exit', orphan)
  for (const stream of [proc.stdout, proc.stderr]) {
    let partial = ''
    stream.setEncoding('utf8')
    stream.on('data', (chunk) => {
      const lines = (partial + chunk).split('\n')
      partial = lines.pop()
      log.push(...lines)
    })
  }

  const gw = {
    bases: ports.map((p) => `http://127.0.0.1:${p}`),
    adminPort,
    log,
    tail: (n = 60) => log.slice(-n).join('\n'),
    // settled: the wxauth log lines with this msg once the log has been
    // quiet for a moment. Caddy writes a line before it answers, but this
    // process reads Caddy's output on its own time.
    async settled(msg) {
      let n = gw.entries(msg).length
      for (let quiet = 0, waited = 0; quiet < 200 && waited < 3000; waited += 50) {
        await new Promise((ok) => setTimeout(ok, 50))
        const now = gw.entries(msg).length
        quiet = now === n ? quiet + 50 : 0
        n = now
      }
      return gw.entries(msg)
    },
    // entries: the wxauth log lines (parsed) with this msg.
    entries: (msg) => log.flatMap((l) => {
      try {
        const e = JSON.parse(l)
        return e.logger === 'http.handlers.wxauth' && e.msg === msg ? [e] : []
      } catch {
        return []
      }
    }),
    async stop() {
      if (exited === null) {
        const gone = new Promise((ok) => proc.once('exit', ok))
        proc.kill('SIGTERM')
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
        await gone
        clearTimeout(timer)
      }
      process.off('exit', orphan)
      rmSync(dir, { recursive: true, force: true })
    },
  }

  // Ready when every site's gateway answers its own 401.
  const deadline = Date.now() + 60_000
  for (const base of gw.bases) {
    for (;;) {
      if (exited) throw new Error(`caddy exited (${JSON.stringify(exited)}) before it was ready:\n${gw.tail()}`)
      try {
        const r = await fetch(base + '/wx/me')
        if (r.status === 401) break
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await gw.stop()
        throw new Error(`caddy was not ready within 60s:\n${gw.tail()}`)
      }
      await new Promise((ok) => setTimeout(ok, 100))
    }
  }
  return gw
}

// rejects awaits promise, which must reject with a WxAuthError of this
// code, and returns the error.
export async function rejects(promise, code) {
  try {
    await promise
  } catch (e) {
    assert.ok(e instanceof WxAuthError, `not a WxAuthError: ${e && e.stack}`)
    assert.equal(e.code, code, `code: ${e.code} (${e.message})`)
    return e
  }
  assert.fail(`resolved; wanted a ${code} rejection`)
}

// tinyPNG writes a real 1x1 PNG (signature, IHDR, IDAT, IEND with CRCs).
export async function writeTinyPNG(path) {
  const { deflateSync } = await import('node:zlib')
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    return c >>> 0
  })
  const crc = (buf) => {
    let c = 0xffffffff
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8)
    return (c ^ 0xffffffff) >>> 0
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(data.length)
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data])
    const c = Buffer.alloc(4)
    c.writeUInt32BE(crc(td))
    return Buffer.concat([len, td, c])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(1, 0) // width
  ihdr.writeUInt32BE(1, 4) // height
  ihdr[8] = 8 // bit depth
  ihdr[9] = 2 // colour type: RGB
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.from([0, 0x33, 0x99, 0xcc]))),
    chunk('IEND', Buffer.alloc(0)),
  ])
  writeFileSync(path, png)
  return png
}
