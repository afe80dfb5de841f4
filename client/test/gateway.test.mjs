// The client against a real gateway: the Caddy built from this repository
// in sandbox mode, driven through a wx-shaped object over fetch.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { createClient, WxAuthError } from '../src/index.js'
import { fakeWx } from './fakewx.mjs'
import { rejects, startGateway, startUpstream, writeTinyPNG } from './harness.mjs'

const KEY = 'wxauth_session'
let upstream, gw, S, F, L, dir, pngPath, pngBytes

// Whatever the client or its tests print goes through console: keep it,
// and check at the end that no token was ever in it.
const printed = []
for (const m of ['log', 'info', 'warn', 'error', 'debug', 'trace']) {
  const orig = console[m]
  console[m] = (...args) => {
    printed.push(args.map(String).join(' '))
    orig.apply(console, args)
  }
}
const devices = []

before(async () => {
  upstream = await startUpstream()
  gw = await startGateway([
    // S: long-lived tokens, for everything that is not about expiry.
    ['app wxclienttest00001', 'sandbox', 'rate_limit off', 'access_ttl 1h', 'forward_phone'],
    // F: access tokens that expire in two seconds. (Not 1s: the gateway
    // truncates "exp" to whole seconds, so a 1s token may live 1 ms.)
    ['app wxclienttest00002', 'sandbox', 'rate_limit off', 'access_ttl 2s', 'refresh_ttl 1h'],
    // L: one login, refresh, profile or phone request per 3 s per client IP.
    ['app wxclienttest00003', 'sandbox', 'rate_limit 1 3s', 'access_ttl 1h'],
  ], upstream.port)
  ;[S, F, L] = gw.bases
  dir = mkdtempSync(join(tmpdir(), 'wxauth-client-test-'))
  pngPath = join(dir, 'avatar.png')
  pngBytes = await writeTinyPNG(pngPath)
})

after(async () => {
  await gw?.stop()
  await upstream?.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

// gwTest prints the gateway's log tail when a test fails.
function gwTest(name, fn) {
  test(name, async (t) => {
    try {
      await fn(t)
    } catch (e) {
      console.error(`--- caddy log tail (${name}) ---\n${gw.tail()}`)
      throw e
    }
  })
}

function device(code, storage) {
  const wx = fakeWx({ code, storage })
  devices.push(wx)
  return wx
}

function stored(wx) {
  const raw = wx.storage.get(KEY)
  return raw ? JSON.parse(raw) : null
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms))
// Long enough for any access token of F (access_ttl 2s: its exp is rounded
// up to the second, so it lives less than 3s) to have expired.
const expiry = () => sleep(3100)

// raw posts to the gateway with no client in between.
async function raw(base, path, { token, body } = {}) {
  const headers = {}
  if (token) headers.Authorization = 'Bearer ' + token
  if (body) headers['Content-Type'] = 'application/json'
  const r = await fetch(base + path, { method: 'POST', headers, body: body && JSON.stringify(body) })
  const text = await r.text()
  return { status: r.status, data: text ? JSON.parse(text) : null }
}

async function rawGet(base, path, token) {
  const r = await fetch(base + path, { headers: { Authorization: 'Bearer ' + token } })
  return { status: r.status, data: await r.json() }
}

gwTest('first use logs in, then the request carries the identity upstream', async () => {
  const wx = device('first-use')
  const client = createClient({ base: S, platform: wx })
  assert.equal(stored(wx), null)

  const res = await client.request({ url: '/hello' })
  assert.equal(res.statusCode, 200)
  assert.equal(wx.counts.login, 1)
  assert.equal(wx.posts('/wx/login'), 1)
  const s = stored(wx)
  assert.match(s.openid, /^o/)
  assert.equal(res.data.wx['x-wx-openid'], s.openid)
  assert.equal(res.data.wx['x-wx-appid'], 'wxclienttest00001')
  assert.equal(res.data.wx['x-wx-source'], 'wechat-miniprogram')
  assert.equal(res.data.authorization, null, 'the token is not passed upstream')

  const again = await client.request({ url: '/hello', method: 'POST', data: { n: 1 } })
  assert.equal(again.statusCode, 200)
  assert.equal(wx.counts.login, 1, 'one login serves later requests')
  assert.deepEqual(await client.login(), {
    openid: s.openid, unionid: s.unionid, appid: 'wxclienttest00001', has_profile: false, profile: null,
  })
  assert.equal(wx.counts.login, 1, 'login() with a session kept does not log in again')
})

gwTest('parallel first requests cause one wx.login and one POST /wx/login', async () => {
  const wx = device('parallel-first')
  const client = createClient({ base: S, platform: wx })
  const all = await Promise.all(Array.from({ length: 10 }, (_, i) => client.request({ url: '/p?i=' + i })))
  assert.equal(wx.counts.login, 1)
  assert.equal(wx.posts('/wx/login'), 1)
  const openids = new Set(all.map((r) => r.data.wx['x-wx-openid']))
  assert.equal(openids.size, 1)
  assert.ok(all.every((r) => r.statusCode === 200))
})

gwTest('the tokens are read back from storage on the next launch', async () => {
  const storage = new Map()
  const first = device('next-launch', storage)
  await createClient({ base: S, platform: first }).request({ url: '/hello' })
  const kept = stored(first)
  assert.ok(kept.access_token && kept.refresh_token)

  const second = device('next-launch', storage) // a new launch, same storage
  const res = await createClient({ base: S, platform: second }).request({ url: '/hello' })
  assert.equal(res.statusCode, 200)
  assert.equal(second.counts.login, 0, 'no login on the next launch')
  assert.equal(second.log.length, 1, 'just the request itself')
  assert.equal(res.data.wx['x-wx-openid'], kept.openid)
})

gwTest('10 parallel requests after expiry cause exactly one refresh', async () => {
  const wx = device('expiry-ahead')
  const client = createClient({ base: F, platform: wx, refreshLeeway: 0 })
  await client.request({ url: '/hello' })
  const before = stored(wx)
  const gatewayRefreshes = (await gw.settled('refresh')).length
  await expiry()

  const all = await Promise.all(Array.from({ length: 10 }, () => client.request({ url: '/after-expiry' })))
  assert.ok(all.every((r) => r.statusCode === 200), JSON.stringify(all.map((r) => r.statusCode)))
  assert.equal(wx.posts('/wx/refresh'), 1, 'one refresh from the client')
  assert.equal((await gw.settled('refresh')).length - gatewayRefreshes, 1, 'one refresh seen by the gateway')
  assert.equal(wx.counts.login, 1, 'no new login')
  assert.equal(wx.to('/after-expiry').length, 10, 'each sent once, with the new token')
  const after = stored(wx)
  assert.notEqual(after.refresh_token, before.refresh_token)
  assert.notEqual(after.access_token, before.access_token)

  // A request started after the refresh uses the new token as it is.
  assert.equal((await client.request({ url: '/later' })).statusCode, 200)
  assert.equal(wx.posts('/wx/refresh'), 1)
})

gwTest('10 parallel requests refused with token_expired share one refresh and are retried once each', async () => {
  const wx = device('expiry-401')
  // A clock that does not move: the client never sees the token expire, so
  // only the gateway's 401s tell it.
  const frozen = Date.now()
  const client = createClient({ base: F, platform: wx, now: () => frozen })
  await client.request({ url: '/hello' })
  await expiry()
  const gatewayRefreshes = (await gw.settled('refresh')).length

  const all = await Promise.all(Array.from({ length: 10 }, () => client.request({ url: '/refused-first' })))
  assert.ok(all.every((r) => r.statusCode === 200), JSON.stringify(all.map((r) => r.statusCode)))
  assert.equal(wx.posts('/wx/refresh'), 1)
  assert.equal((await gw.settled('refresh')).length - gatewayRefreshes, 1)
  const sent = wx.to('/refused-first')
  assert.equal(sent.length, 20, 'each request twice: refused, then retried')
  assert.equal(sent.filter((e) => e.status === 401).length, 10)
  assert.equal(upstream.to('/refused-first').length, 10, 'the app saw each request once')
  assert.equal(wx.counts.login, 1)
})

gwTest('a token_expired that arrives after the refresh is retried with the new token, not refreshed again', async () => {
  const wx = device('late-401')
  const frozen = Date.now()
  const client = createClient({ base: F, platform: wx, now: () => frozen })
  await client.request({ url: '/hello' })
  await expiry()
  wx.holdAnswers('/late', 400) // its 401 reaches the client after the refresh is done
  const late = client.request({ url: '/late' })
  assert.equal((await client.request({ url: '/prompt' })).statusCode, 200)
  assert.equal(wx.posts('/wx/refresh'), 1)
  assert.equal((await late).statusCode, 200)
  assert.equal(wx.posts('/wx/refresh'), 1, 'no second refresh')
  assert.deepEqual(wx.to('/late').map((e) => e.status), [401, 200])
})

gwTest('a lost refresh answer is sent again once, with the same refresh token', async () => {
  const wx = device('lost-refresh-retry')
  const client = createClient({ base: F, platform: wx, refreshLeeway: 0 })
  await client.request({ url: '/hello' })
  const spent = stored(wx).refresh_token
  await expiry()

  wx.loseNextAnswer('/wx/refresh')
  const res = await client.request({ url: '/after-lost-refresh' })
  assert.equal(res.statusCode, 200)
  const refreshes = wx.to('/wx/refresh')
  assert.equal(refreshes.length, 2, 'sent again once')
  assert.deepEqual(refreshes.map((e) => e.data.refresh_token === spent), [true, true], 'with the same token')
  assert.equal(wx.lostAnswers.length, 1)
  assert.equal(wx.lostAnswers[0].refresh_token === undefined, false, 'the gateway did answer the lost one')
})

gwTest('a lost refresh answer recovers without a new login (refresh_grace)', async () => {
  const wx = device('lost-refresh')
  const client = createClient({ base: F, platform: wx, refreshLeeway: 0 })
  await client.request({ url: '/hello' })
  await expiry()

  wx.loseNextAnswer('/wx/refresh')
  const res = await client.request({ url: '/after-lost-refresh' })
  assert.equal(res.statusCode, 200)
  assert.equal(wx.posts('/wx/refresh'), 2)
  assert.deepEqual(wx.to('/wx/refresh').map((e) => e.status), [200, 200], 'the retry within the grace is answered')
  assert.equal(wx.counts.login, 1, 'recovered without a new login')
  assert.equal(stored(wx).refresh_token, wx.lostAnswers[0].refresh_token,
    'the retry got the same successor refresh token as the lost answer')
})

gwTest('a lost login answer is sent again with the same code', async () => {
  const wx = device('lost-login')
  const client = createClient({ base: S, platform: wx })
  wx.loseNextAnswer('/wx/login')
  const user = await client.login()
  assert.equal(wx.counts.login, 1, 'one wx.login')
  assert.deepEqual(wx.to('/wx/login').map((e) => e.data.code), ['lost-login', 'lost-login'])
  assert.equal(user.openid, wx.lostAnswers[0].openid, 'the same user')
})

gwTest('a 401 that a renewal does not cure surfaces after one retry: no loop', async () => {
  const wx = device('always-401')
  const client = createClient({ base: S, platform: wx })
  await client.login()
  const e = await rejects(client.request({ url: '/always-401' }), 'token_expired')
  assert.equal(e.status, 401)
  assert.equal(wx.to('/always-401').length, 2, 'sent twice, no more')
  assert.equal(wx.posts('/wx/refresh'), 1)
  assert.equal(wx.counts.login, 1)
})

gwTest('a revoked session leads to a new login', async () => {
  const wx = device('revoked')
  const client = createClient({ base: S, platform: wx })
  const first = await client.request({ url: '/hello' })
  // The session ends elsewhere (here: logged out with its own token).
  assert.equal((await raw(S, '/wx/logout', { token: stored(wx).access_token })).status, 204)

  const res = await client.request({ url: '/after-revoke' })
  assert.equal(res.statusCode, 200)
  const sent = wx.to('/after-revoke')
  assert.deepEqual(sent.map((e) => e.status), [401, 200])
  assert.equal(wx.counts.login, 2, 'one new login')
  assert.equal(wx.posts('/wx/refresh'), 0, 'a revoked session is not refreshed')
  assert.equal(res.data.wx['x-wx-openid'], first.data.wx['x-wx-openid'])
})

gwTest('a request that starts during a renewal waits for it and is sent once, with the new token', async () => {
  const wx = device('during-login')
  const client = createClient({ base: S, platform: wx })
  await client.request({ url: '/hello' })
  assert.equal((await raw(S, '/wx/logout', { token: stored(wx).access_token })).status, 204)
  let during
  wx.onLogin = () => { during = client.request({ url: '/during-login' }) }
  assert.equal((await client.request({ url: '/starts-renewal' })).statusCode, 200)
  assert.equal((await during).statusCode, 200)
  assert.deepEqual(wx.to('/during-login').map((e) => e.status), [200])
  assert.equal(wx.counts.login, 2)
})

gwTest('a refresh refused as revoked turns into one login shared by all waiting requests', async () => {
  const wx = device('revoked-refresh')
  const client = createClient({ base: F, platform: wx, refreshLeeway: 0 })
  await client.request({ url: '/hello' })
  assert.equal((await raw(F, '/wx/logout', { token: stored(wx).access_token })).status, 204)
  await expiry()

  const all = await Promise.all(Array.from({ length: 10 }, () => client.request({ url: '/after-revoked-refresh' })))
  assert.ok(all.every((r) => r.statusCode === 200))
  assert.equal(wx.posts('/wx/refresh'), 1)
  assert.equal(wx.to('/wx/refresh')[0].status, 401)
  assert.equal(wx.counts.login, 2)
  assert.equal(wx.posts('/wx/login'), 2)
})

gwTest('a token the gateway cannot verify (token_invalid) leads to a new login', async () => {
  const storage = new Map()
  storage.set(KEY, JSON.stringify({
    access_token: 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmVkIGJ5IGFub3RoZXIga2V5',
    refresh_token: 'AAAAAAAAAAAAAAAAAAAAAA.not-a-real-refresh-token',
    expires_at: Date.now() + 3600e3, refresh_at: Date.now() + 3000e3,
    openid: 'o-old', appid: 'wxclienttest00001', has_profile: false, profile: null,
  }))
  const wx = device('invalid-token', storage)
  const res = await createClient({ base: S, platform: wx }).request({ url: '/hello' })
  assert.equal(res.statusCode, 200)
  assert.deepEqual(wx.to('/hello').map((e) => e.status), [401, 200])
  assert.equal(wx.counts.login, 1)
  assert.notEqual(stored(wx).openid, 'o-old')
})

gwTest('a chosen avatar is uploaded with the nickname, and the new X-WX-NICKNAME reaches the upstream', async () => {
  const wx = device('avatar')
  const client = createClient({ base: S, platform: wx })
  const before = await client.request({ url: '/hello' })
  assert.equal(before.data.wx['x-wx-nickname'], undefined)
  const oldToken = stored(wx).access_token

  const nickname = '卡罗尔 🌸'
  const profile = await client.updateProfile({ nickname, avatarPath: pngPath })
  assert.equal(profile.nickname, nickname)
  assert.ok(profile.avatar_url.startsWith(S + '/wx/avatar/'), profile.avatar_url)
  const upload = wx.to('/wx/profile')
  assert.deepEqual(upload.map((e) => [e.api, e.status]), [['uploadFile', 200]])
  const s = stored(wx)
  assert.notEqual(s.access_token, oldToken, 'the answer\'s access token is kept')
  assert.equal(s.has_profile, true)
  assert.deepEqual(s.profile, profile)

  const res = await client.request({ url: '/after-avatar' })
  assert.equal(decodeURIComponent(res.data.wx['x-wx-nickname']), nickname)
  assert.equal(res.data.wx['x-wx-avatar'], profile.avatar_url)
  assert.equal(upstream.to('/after-avatar')[0].headers['x-wx-nickname'], res.data.wx['x-wx-nickname'])
  assert.equal(wx.posts('/wx/refresh') + wx.posts('/wx/login'), 1, 'no refresh was needed to show it')

  const img = await fetch(profile.avatar_url)
  assert.equal(img.headers.get('content-type'), 'image/png')
  assert.deepEqual(Buffer.from(await img.arrayBuffer()), pngBytes)

  const me = await client.me()
  assert.equal(me.has_profile, true)
  assert.deepEqual(me.profile, profile)
})

gwTest('a nickname alone is sent as JSON; a rejected one is a content_rejected error', async () => {
  const wx = device('nickname-only')
  const client = createClient({ base: S, platform: wx })
  const profile = await client.updateProfile({ nickname: 'Bob' })
  assert.equal(profile.nickname, 'Bob')
  const sent = wx.to('/wx/profile')
  assert.deepEqual(sent.map((e) => [e.api, e.contentType, e.status]), [['request', 'application/json', 200]])
  const res = await client.request({ url: '/after-nickname' })
  assert.equal(res.data.wx['x-wx-nickname'], 'Bob')

  const e = await rejects(client.updateProfile({ nickname: 'a risky name' }), 'content_rejected')
  assert.equal(e.status, 422)
  assert.match(e.message, /content check/)
  await rejects(client.updateProfile({}), 'invalid_request')
  assert.equal((await client.me()).profile.nickname, 'Bob', 'nothing was stored')
})

gwTest('savePhone stores the number and its access token carries it upstream', async () => {
  const wx = device('phone')
  const client = createClient({ base: S, platform: wx })
  assert.equal((await client.me()).has_phone, false)
  const phone = await client.savePhone('phone-code-1')
  assert.deepEqual(phone, { phone_number: '13800138000', pure_phone_number: '13800138000', country_code: '86' })
  const res = await client.request({ url: '/after-phone' })
  assert.equal(res.data.wx['x-wx-phone'], '13800138000')
  assert.equal((await client.me()).has_phone, true)

  const e = await rejects(client.savePhone('invalid'), 'invalid_code')
  assert.equal(e.status, 400)
})

gwTest('webviewURL opens the page logged in as the same user, once', async () => {
  const wx = device('webview')
  const client = createClient({ base: S, platform: wx })
  await client.updateProfile({ nickname: 'Web View' })
  const src = await client.webviewURL(S + '/orders?id=7')
  const u = new URL(src)
  assert.equal(u.origin, S)
  assert.equal(u.pathname, '/wx/web/handoff')
  assert.equal(u.searchParams.get('next'), '/orders?id=7')
  assert.match(u.searchParams.get('ticket'), /^[A-Za-z0-9_-]{43}$/)

  // The web-view's first load: a redirect to the page with the cookie session.
  const first = await fetch(src, { redirect: 'manual' })
  assert.equal(first.status, 302)
  assert.equal(first.headers.get('location'), '/orders?id=7')
  const cookies = first.headers.getSetCookie().map((c) => c.split(';')[0]).filter((c) => c.startsWith('wxauth_token='))
  assert.equal(cookies.length, 1, 'the access cookie is set')
  const page = await fetch(S + '/orders?id=7', { headers: { Cookie: cookies[0] } })
  const seen = await page.json()
  const s = stored(wx)
  assert.equal(seen.wx['x-wx-openid'], s.openid)
  assert.equal(seen.wx['x-wx-unionid'], s.unionid)
  assert.equal(seen.wx['x-wx-source'], 'wechat-miniprogram')
  assert.equal(decodeURIComponent(seen.wx['x-wx-nickname']), 'Web View')

  // A ticket works once.
  const again = await fetch(src, { redirect: 'manual' })
  assert.equal(again.status, 400)
  assert.equal((await again.json()).error, 'invalid_code')
  assert.equal(again.headers.getSetCookie().length, 0)

  await rejects(client.webviewURL('/orders'), 'invalid_request')
})

gwTest('logout ends the session on the gateway and forgets it here', async () => {
  const wx = device('logout')
  const client = createClient({ base: S, platform: wx })
  await client.request({ url: '/hello' })
  const token = stored(wx).access_token

  await client.logout()
  assert.deepEqual(wx.to('/wx/logout').map((e) => e.status), [204])
  assert.equal(wx.storage.has(KEY), false, 'the session is removed from storage')
  const refused = await rawGet(S, '/hello', token)
  assert.equal(refused.status, 401)
  assert.equal(refused.data.error, 'token_revoked')

  await client.logout() // nothing to end: no request
  assert.equal(wx.to('/wx/logout').length, 1)

  await client.request({ url: '/hello' })
  assert.equal(wx.counts.login, 2, 'the next request logs in again')
})

gwTest('logout({ everywhere: true }) ends every session of the user', async () => {
  const phone = device('everywhere')
  const tablet = device('everywhere') // the same user on another device
  const a = createClient({ base: S, platform: phone })
  const b = createClient({ base: S, platform: tablet })
  await a.request({ url: '/hello' })
  await b.request({ url: '/hello' })
  const other = stored(tablet).access_token

  await a.logout({ everywhere: true })
  assert.deepEqual(phone.to('/wx/logout').map((e) => e.status), [204])
  const refused = await rawGet(S, '/hello', other)
  assert.equal(refused.status, 401, 'the other device\'s session ended too')
  assert.equal(refused.data.error, 'token_revoked')
})

gwTest('logout with an expired access token ends the session without a refresh first', async () => {
  const wx = device('logout-expired')
  const client = createClient({ base: F, platform: wx })
  await client.request({ url: '/hello' })
  const { refresh_token: rt } = stored(wx)
  await expiry()
  await client.logout()
  assert.deepEqual(wx.to('/wx/logout').map((e) => e.status), [204])
  assert.equal(wx.posts('/wx/refresh'), 0)
  assert.equal(wx.storage.has(KEY), false)
  const refused = await raw(F, '/wx/refresh', { body: { refresh_token: rt } })
  assert.equal(refused.status, 401, 'the session is over')
})

gwTest('logout of a session the gateway already ended counts as done; everywhere then says it could not', async () => {
  const wx = device('logout-twice')
  const client = createClient({ base: S, platform: wx })
  await client.login()
  assert.equal((await raw(S, '/wx/logout', { token: stored(wx).access_token })).status, 204)
  await client.logout()
  assert.deepEqual(wx.to('/wx/logout').map((e) => e.status), [401])
  assert.equal(wx.storage.has(KEY), false)

  await client.login()
  assert.equal((await raw(S, '/wx/logout', { token: stored(wx).access_token })).status, 204)
  await rejects(client.logout({ everywhere: true }), 'token_revoked')
  assert.equal(wx.storage.has(KEY), false, 'forgotten here all the same')
})

gwTest('login failures are WxAuthErrors with the gateway\'s code and message', async () => {
  const blocked = createClient({ base: S, platform: device('blocked') })
  const e = await rejects(blocked.request({ url: '/hello' }), 'login_blocked')
  assert.equal(e.status, 403)
  assert.match(e.message, /blocked/)
  await rejects(createClient({ base: S, platform: device('invalid') }).me(), 'invalid_code')
  await rejects(createClient({ base: S, platform: device('busy') }).login(), 'platform_unavailable')

  const wx = device('no-code')
  wx.codes.push(null) // wx.login itself fails
  await rejects(createClient({ base: S, platform: wx }).login(), 'login_failed')
  assert.equal(wx.posts('/wx/login'), 0)

  const other = device('wrong-appid')
  const e2 = await rejects(createClient({ base: S, platform: other, appid: 'wxnosuchapp00000' }).login(), 'invalid_request')
  assert.equal(e2.status, 400)
  assert.match(e2.message, /appid/)
  const named = device('named-appid')
  assert.equal((await createClient({ base: S, platform: named, appid: 'wxclienttest00001' }).login()).appid, 'wxclienttest00001')
})

gwTest('a 429 with a Retry-After over the bound surfaces at once', async () => {
  const wx = device('limited') // the sandbox's 45011: Retry-After 60
  const client = createClient({ base: S, platform: wx })
  const t0 = Date.now()
  const e = await rejects(client.request({ url: '/hello' }), 'rate_limited')
  assert.ok(Date.now() - t0 < 3000, 'no wait')
  assert.equal(e.status, 429)
  assert.equal(e.retryAfter, 60)
  assert.equal(wx.posts('/wx/login'), 1)
})

gwTest('a 429 from the gateway with a short Retry-After is waited for, once', async () => {
  // Spend this client IP's one request per 3 s, then log in.
  assert.equal((await raw(L, '/wx/login', { body: { code: 'spender' } })).status, 200)
  const wx = device('waiter')
  const client = createClient({ base: L, platform: wx })
  const t0 = Date.now()
  const user = await client.login()
  assert.match(user.openid, /^o/)
  assert.deepEqual(wx.to('/wx/login').map((e) => e.status), [429, 200])
  assert.ok(Date.now() - t0 >= 900, 'waited for Retry-After')
})

gwTest('a 429 from the app is retried once after a short Retry-After, not after a long one', async () => {
  const wx = device('app-429')
  const client = createClient({ base: S, platform: wx })
  const t0 = Date.now()
  const ok = await client.request({ url: '/flaky?key=short&retry_after=1' })
  assert.equal(ok.statusCode, 200)
  assert.ok(Date.now() - t0 >= 1000)
  assert.equal(upstream.requests.filter((r) => r.query === '?key=short&retry_after=1').length, 2)

  const t1 = Date.now()
  const refused = await client.request({ url: '/flaky?key=long&retry_after=30' })
  assert.equal(refused.statusCode, 429, 'answered as the app said, like wx.request')
  assert.ok(Date.now() - t1 < 3000)
  assert.equal(upstream.requests.filter((r) => r.query === '?key=long&retry_after=30').length, 1)
})

gwTest('request() keeps the token on the gateway\'s site', async () => {
  const wx = device('foreign')
  const client = createClient({ base: S, platform: wx })
  for (const url of ['https://evil.example/steal', S + '.evil.example/x', '//evil.example/x', 'relative']) {
    await rejects(client.request({ url }), 'invalid_request')
  }
  assert.equal(wx.log.length, 0, 'nothing was sent')
  assert.equal((await client.request({ url: S + '/absolute-ok' })).statusCode, 200)
})

gwTest('a network failure of a request surfaces as network_error, and is not repeated', async () => {
  const wx = device('offline')
  const client = createClient({ base: S, platform: wx })
  await client.login()
  wx.failNextRequest()
  const e = await rejects(client.request({ url: '/offline', method: 'POST' }), 'network_error')
  assert.equal(e.status, 0)
  assert.equal(wx.to('/offline').length, 1)
})

test('no token was printed, nor is one in an error', async () => {
  const tokens = new Set()
  for (const wx of devices) {
    for (const text of wx.answers) {
      try {
        const a = JSON.parse(text)
        for (const k of ['access_token', 'refresh_token']) if (a && a[k]) tokens.add(a[k])
      } catch { /* not JSON */ }
    }
  }
  assert.ok(tokens.size > 20, `saw ${tokens.size} tokens`)
  const out = printed.join('\n')
  for (const t of tokens) {
    assert.ok(!out.includes(t) && !out.includes(t.slice(-16)), 'a token was printed')
  }

  // An error about a refused token says nothing of the token.
  const wx = device('error-has-no-token')
  const frozen = Date.now()
  const client = createClient({ base: F, platform: wx, now: () => frozen })
  await client.login()
  const { access_token: at, refresh_token: rt } = stored(wx)
  assert.equal((await raw(F, '/wx/logout', { token: at })).status, 204)
  wx.codes.push(null) // and the new login fails
  const e = await rejects(client.request({ url: '/hello' }), 'login_failed')
  const dump = JSON.stringify(e) + e.stack + e.message + String(e)
  assert.ok(!dump.includes(at) && !dump.includes(rt))
})
