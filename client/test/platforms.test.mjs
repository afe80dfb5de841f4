// The platform adapter: the object passed in is the one used (never a
// global), with wx-, Taro-, uni- and qq-shaped objects over a real gateway.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { createClient, WxAuthError } from '../src/index.js'
import { fakeWx, taroShaped } from './fakewx.mjs'
import { startGateway, startUpstream, writeTinyPNG } from './harness.mjs'

const require = createRequire(import.meta.url)
const cjs = require('../dist/index.js')

let upstream, gw, base, dir, pngPath

// A global wx that must never be touched.
const touched = []
globalThis.wx = new Proxy({}, {
  get(_, name) {
    touched.push(String(name))
    throw new Error('the global wx was used: ' + String(name))
  },
})
const unhandled = []
process.on('unhandledRejection', (e) => unhandled.push(e))

before(async () => {
  upstream = await startUpstream()
  gw = await startGateway([[
    'app wxclienttest00001',
    'app 1112223334 {', '\tplatform qq', '}',
    'sandbox', 'rate_limit off',
  ]], upstream.port)
  base = gw.bases[0]
  dir = mkdtempSync(join(tmpdir(), 'wxauth-client-platforms-'))
  pngPath = join(dir, 'a.png')
  await writeTinyPNG(pngPath)
})

after(async () => {
  await gw?.stop()
  await upstream?.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
  assert.deepEqual(touched, [], 'the global wx was never touched')
})

const WX = 'wxclienttest00001'

test('createClient needs the platform object: it does not look for a global', () => {
  assert.throws(() => createClient({ base: 'http://127.0.0.1:1' }), TypeError)
  assert.throws(() => createClient({ base: 'http://127.0.0.1:1', platform: {} }), TypeError)
  assert.throws(() => createClient({ base: '127.0.0.1', platform: fakeWx() }), TypeError)
  assert.deepEqual(touched, [])
})

test('a Taro-shaped object (callbacks and a promise) is used, and its rejected promises are not left unhandled', async () => {
  const device = fakeWx({ code: 'taro-user' })
  const taro = taroShaped(device)
  const client = createClient({ base, platform: taro, appid: WX })
  const res = await client.request({ url: '/hello' })
  assert.equal(res.statusCode, 200)
  assert.equal(device.counts.login, 1)
  assert.match(res.data.wx['x-wx-openid'], /^o/)

  const profile = await client.updateProfile({ nickname: 'Taro 用户', avatarPath: pngPath })
  assert.equal(profile.nickname, 'Taro 用户')
  assert.deepEqual(device.to('/wx/profile').map((e) => [e.api, e.status]), [['uploadFile', 200]])

  device.failNextRequest()
  await assert.rejects(client.request({ url: '/offline' }), (e) => e instanceof WxAuthError && e.code === 'network_error')
  await new Promise((ok) => setTimeout(ok, 50))
  assert.deepEqual(unhandled, [], 'no unhandled rejection from Taro\'s promise')

  await client.logout()
  assert.deepEqual(device.to('/wx/logout').map((e) => e.status), [204])
  assert.equal(device.storage.size, 0)
})

test('a uni-app-shaped object: callbacks are passed, so its promise form ([err, res]) is never relied on', async () => {
  const device = fakeWx({ code: 'uni-user' })
  const withCallbacks = (name) => (opts) => {
    if (opts && (opts.success || opts.fail)) return device[name](opts)
    // uni-app (Vue 2) without callbacks: a promise of [err, res].
    return new Promise((ok) => device[name]({ ...opts, success: (r) => ok([null, r]), fail: (e) => ok([e, undefined]) }))
  }
  const uni = {
    login: withCallbacks('login'),
    request: withCallbacks('request'),
    uploadFile: withCallbacks('uploadFile'),
    getStorageSync: (k) => device.getStorageSync(k),
    setStorageSync: (k, v) => device.setStorageSync(k, v),
    removeStorageSync: (k) => device.removeStorageSync(k),
  }
  const client = createClient({ base, platform: uni, appid: WX })
  const me = await client.me()
  assert.equal(me.appid, WX)
  assert.equal(device.counts.login, 1)
  assert.equal(device.posts('/wx/login'), 1)
})

test('a qq-shaped object logs in to a QQ app (named by appid), through the CommonJS build', async () => {
  const qq = fakeWx({ code: 'qq-user' })
  const client = cjs.createClient({ base, platform: qq, appid: '1112223334' })
  const res = await client.request({ url: '/hello' })
  assert.equal(res.statusCode, 200)
  assert.equal(res.data.wx['x-wx-source'], 'qq-miniprogram')
  assert.equal(res.data.wx['x-wx-appid'], '1112223334')
  assert.deepEqual(qq.to('/wx/login').map((e) => e.data), [{ code: 'qq-user', appid: '1112223334' }])

  // Without the appid, a gateway with two apps cannot tell which.
  const lost = fakeWx({ code: 'qq-user' })
  await assert.rejects(cjs.createClient({ base, platform: lost }).login(),
    (e) => e instanceof cjs.WxAuthError && e.code === 'invalid_request' && /appid/.test(e.message))
})

test('a platform object without uploadFile fails the avatar upload with a clear error', async () => {
  const device = fakeWx({ code: 'no-upload' })
  const bare = { ...device, uploadFile: undefined }
  const client = createClient({ base, platform: bare, appid: WX })
  await assert.rejects(client.updateProfile({ avatarPath: pngPath }),
    (e) => e instanceof WxAuthError && e.code === 'invalid_request' && /uploadFile/.test(e.message))
})
