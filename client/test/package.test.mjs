// The npm package layout: both entries load, the CommonJS copy and the
// .d.cts are what build.mjs makes of the sources, the package names no
// runtime dependency, and the README shows the example files as they are.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

test('the package name resolves to the ESM source for import and the CommonJS build for require', async () => {
  assert.equal(fileURLToPath(import.meta.resolve(pkg.name)), join(root, 'src', 'index.js'))
  assert.equal(require.resolve(pkg.name), join(root, 'dist', 'index.js'))

  const esm = await import(pkg.name)
  const cjs = require(pkg.name)
  assert.deepEqual(Object.keys(esm).sort(), ['WxAuthError', 'createClient'])
  assert.deepEqual(Object.keys(cjs).sort(), ['WxAuthError', 'createClient'])
  for (const m of [esm, cjs]) {
    const e = new m.WxAuthError('token_revoked', 'ended', { status: 401 })
    assert.ok(e instanceof Error)
    assert.equal(e.name, 'WxAuthError')
    assert.equal(e.code, 'token_revoked')
    assert.equal(e.status, 401)
    assert.equal(typeof m.createClient, 'function')
  }
})

test('dist/ and index.d.cts are up to date with their sources', () => {
  execFileSync(process.execPath, [join(root, 'build.mjs'), '--check'], { stdio: 'inherit' })
})

test('package.json: no runtime dependencies, pinned dev dependencies, every export shipped', () => {
  assert.equal(pkg.dependencies, undefined)
  assert.equal(pkg.peerDependencies, undefined)
  assert.deepEqual(Object.keys(pkg.devDependencies).sort(), ['miniprogram-api-typings', 'typescript'])
  for (const v of Object.values(pkg.devDependencies)) assert.match(v, /^\d+\.\d+\.\d+$/, 'pinned')
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'))
  for (const [name, v] of Object.entries(pkg.devDependencies)) {
    assert.equal(lock.packages['node_modules/' + name].version, v)
  }

  const targets = []
  const walk = (x) => (typeof x === 'string' ? targets.push(x) : Object.values(x).forEach(walk))
  walk(pkg.exports)
  targets.push(pkg.main, pkg.module, pkg.types, pkg.miniprogram + '/index.js')
  for (const t of targets) {
    assert.ok(existsSync(join(root, t)), `${t} exists`)
    if (t === './package.json') continue
    const rel = t.replace(/^\.\//, '')
    assert.ok(pkg.files.some((f) => rel === f || rel.startsWith(f)), `${t} is in "files"`)
  }
})

// The client's README and the mini-program guide (docs/miniprogram.md)
// show the example files as they are.
for (const doc of ['README.md', '../docs/miniprogram.md']) {
  test(`${doc} shows the example files as they are`, () => {
    const readme = readFileSync(join(root, doc), 'utf8')
    // A fenced block whose first line is a comment naming the file, which
    // starts with that same line.
    const blocks = [...readme.matchAll(/```(?:js|xml|html)\n((?:\/\/|<!--) (example\/\S+?)(?: -->)?\n[\s\S]*?)```/g)]
    const shown = blocks.map((b) => b[2])
    assert.deepEqual(shown.sort(), ['example/app.js', 'example/pages/profile/profile.js', 'example/pages/profile/profile.wxml'])
    for (const [, body, path] of blocks) {
      assert.equal(body, readFileSync(join(root, path), 'utf8'), `${path} in ${doc}`)
    }
  })
}
