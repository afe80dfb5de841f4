// client.scan against a real gateway: a website's ticket (made with
// fetch, as the website's page does), the mini program's scanned,
// confirm and cancel through the client, and the website's wait.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'

import { createClient } from '../src/index.js'
import { fakeWx } from './fakewx.mjs'
import { rejects, startGateway, startUpstream } from './harness.mjs'

const APP = 'wxclientscan00001'
let upstream, gw, base

before(async () => {
  upstream = await startUpstream()
  gw = await startGateway([
    [`app ${APP} {`, '\tscan_login pages/scan/index', '}', 'sandbox', 'rate_limit off'],
  ], upstream.port)
  ;[base] = gw.bases
})

after(async () => {
  await gw?.stop()
  await upstream?.close()
})

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

// website is a browser's page: POST /wx/scan, then its waits, with the
// scan cookie it was given.
async function website() {
  const r = await fetch(base + '/wx/scan', { method: 'POST' })
  assert.equal(r.status, 200)
  const { ticket, qr_url: qrURL } = await r.json()
  const cookie = r.headers.getSetCookie().find((c) => c.startsWith('wxauth_scan=')).split(';')[0]
  return {
    ticket,
    qrURL,
    async wait(seen) {
      const w = await fetch(`${base}/wx/scan/wait?ticket=${ticket}&seen=${seen}`, { headers: { Cookie: cookie } })
      return { status: w.status, body: await w.json(), cookies: w.headers.getSetCookie() }
    },
  }
}

gwTest('scan.scanned and scan.confirm log the website in as the mini program\'s user', async () => {
  const site = await website()
  const wx = fakeWx({ code: 'scan-client-amy' })
  const client = createClient({ base, platform: wx })

  // The page opens with the scene URI-encoded, as onLoad's query has it.
  await client.scan.scanned(encodeURIComponent(site.ticket))
  assert.equal(wx.counts.login, 1, 'the first step logged in')
  assert.equal(wx.posts('/wx/scan/scanned'), 1)
  assert.deepEqual((await site.wait('pending')).body, { status: 'scanned' })

  await client.scan.confirm(site.ticket)
  const done = await site.wait('scanned')
  assert.equal(done.body.status, 'confirmed')
  const token = done.cookies.find((c) => c.startsWith('wxauth_token='))
  assert.ok(token, 'the confirmed wait sets the session cookie')

  // The website's cookie session is the mini program's user.
  const page = await fetch(base + '/hello', { headers: { Cookie: token.split(';')[0] } })
  assert.equal(page.status, 200)
  const { openid } = await client.login()
  assert.equal((await page.json()).wx['x-wx-openid'], openid)

  // Nothing is confirmed twice.
  const e = await rejects(client.scan.confirm(site.ticket), 'invalid_code')
  assert.equal(e.status, 400)
  assert.equal(wx.counts.login, 1)
})

gwTest('scan.cancel ends the website\'s wait as canceled', async () => {
  const site = await website()
  const client = createClient({ base, platform: fakeWx({ code: 'scan-client-bea' }) })
  await client.scan.cancel(site.ticket)
  assert.deepEqual((await site.wait('pending')).body, { status: 'canceled' })
  await rejects(client.scan.confirm(site.ticket), 'invalid_code')
})

gwTest('a scan step without a scene is refused before any request', async () => {
  const wx = fakeWx({ code: 'scan-client-cat' })
  const client = createClient({ base, platform: wx })
  await rejects(client.scan.confirm(''), 'invalid_request')
  await rejects(client.scan.scanned(undefined), 'invalid_request')
  assert.equal(wx.log.length, 0)
  assert.equal(wx.counts.login, 0)
})
