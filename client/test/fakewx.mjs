// A wx-shaped object over fetch: one fake "device". Its APIs behave as
// WeChat's do: callback style, success for any HTTP status, fail only when
// there was no answer, request() and uploadFile() return tasks (not
// promises), request() parses JSON bodies, uploadFile() does not.
import { readFile } from 'node:fs/promises'
import { basename } from 'node:path'

// In the sandbox a user is derived from the login code, so one device
// keeps one code (the gateway takes a code again within its 5 minutes).
export function fakeWx({ code = 'alice', storage = new Map() } = {}) {
  const log = [] // every exchange: { api, method, path, status, contentType }
  const answers = [] // every answer body text, to look for tokens elsewhere
  const counts = { login: 0 }
  const lose = new Map() // path -> how many answers to lose
  let failRequests = 0
  const holds = new Map() // path -> ms to hold its answers back
  const lostAnswers = []

  const count = (pred) => log.filter(pred).length
  const wx = {
    storage,
    log,
    answers,
    lostAnswers,
    counts,
    codes: [],
    /** POSTs the client made to path (e.g. "/wx/refresh"). */
    posts: (path) => count((e) => e.method === 'POST' && e.path === path),
    to: (path) => log.filter((e) => e.path === path),
    /** The next request to path reaches the gateway, but its answer is lost: the client is told of a network failure. */
    loseNextAnswer(path) { lose.set(path, (lose.get(path) || 0) + 1) },
    /** The next request fails before it leaves the device. */
    failNextRequest() { failRequests++ },
    /** Answers of requests to path reach the client ms late. */
    holdAnswers(path, ms) { holds.set(path, ms) },
    /** Called at each wx.login, before it answers. */
    onLogin: null,

    login({ success, fail }) {
      counts.login++
      if (wx.onLogin) wx.onLogin()
      const c = wx.codes.length ? wx.codes.shift() : code
      setTimeout(() => (c === null ? fail({ errMsg: 'login:fail' }) : success({ code: c, errMsg: 'login:ok' })), 1)
    },

    request({ url, method = 'GET', data, header = {}, dataType = 'json', success, fail }) {
      const u = new URL(url)
      const entry = { api: 'request', method, path: u.pathname, status: 0, contentType: null, data }
      log.push(entry)
      if (failRequests > 0) {
        failRequests--
        setTimeout(() => fail({ errMsg: 'request:fail offline' }), 1)
        return task()
      }
      const headers = { ...header }
      let body
      if (data !== undefined && method !== 'GET' && method !== 'HEAD') {
        if (!Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json'
        body = typeof data === 'string' || data instanceof ArrayBuffer ? data : JSON.stringify(data)
      } else if (data && typeof data === 'object') {
        for (const [k, v] of Object.entries(data)) u.searchParams.set(k, String(v))
      }
      entry.contentType = Object.entries(headers).find(([k]) => k.toLowerCase() === 'content-type')?.[1] ?? null
      const lost = lose.get(u.pathname) > 0
      if (lost) lose.set(u.pathname, lose.get(u.pathname) - 1)
      fetch(u, { method, headers, body }).then(async (r) => {
        const text = await r.text()
        entry.status = r.status
        answers.push(text)
        if (holds.has(u.pathname)) await new Promise((ok) => setTimeout(ok, holds.get(u.pathname)))
        if (lost) {
          lostAnswers.push(JSON.parse(text))
          fail({ errMsg: 'request:fail timeout' })
          return
        }
        let parsed = text
        if (dataType === 'json') {
          try { parsed = JSON.parse(text) } catch { /* WeChat leaves it a string */ }
        }
        success({ statusCode: r.status, data: parsed, header: canonical(r.headers), cookies: [], errMsg: 'request:ok' })
      }, (err) => fail({ errMsg: 'request:fail ' + err.message }))
      return task()
    },

    uploadFile({ url, filePath, name, formData = {}, header = {}, success, fail }) {
      const u = new URL(url)
      const entry = { api: 'uploadFile', method: 'POST', path: u.pathname, status: 0, contentType: 'multipart/form-data' }
      log.push(entry)
      readFile(filePath).then(async (bytes) => {
        const form = new FormData()
        for (const [k, v] of Object.entries(formData)) form.append(k, String(v))
        form.append(name, new Blob([bytes]), basename(filePath))
        const r = await fetch(u, { method: 'POST', headers: header, body: form })
        const text = await r.text()
        entry.status = r.status
        answers.push(text)
        success({ statusCode: r.status, data: text, errMsg: 'uploadFile:ok' })
      }).catch((err) => fail({ errMsg: 'uploadFile:fail ' + err.message }))
      return { abort() {}, onProgressUpdate() {}, offProgressUpdate() {} }
    },

    getStorageSync(key) { return storage.has(key) ? storage.get(key) : '' },
    setStorageSync(key, value) { storage.set(key, value) },
    removeStorageSync(key) { storage.delete(key) },
  }
  return wx
}

function task() {
  return { abort() {}, onHeadersReceived() {}, offHeadersReceived() {} }
}

// canonical gives header names as Go writes them (Retry-After,
// Www-Authenticate), not fetch's lower case, so the client must not
// depend on either.
function canonical(headers) {
  const out = {}
  for (const [k, v] of headers) out[k.replace(/(^|-)([a-z])/g, (_, d, c) => d + c.toUpperCase())] = v
  return out
}

// taroShaped wraps a wx-shaped object the way Taro's APIs behave: the
// callbacks are called and a promise is returned too, rejecting on failure.
export function taroShaped(wx) {
  const promised = (name) => (opts = {}) => new Promise((resolve, reject) => {
    wx[name]({
      ...opts,
      success: (r) => { opts.success?.(r); resolve(r) },
      fail: (e) => { opts.fail?.(e); reject(e) },
    })
  })
  return {
    login: promised('login'),
    request: promised('request'),
    uploadFile: promised('uploadFile'),
    getStorageSync: (k) => wx.getStorageSync(k),
    setStorageSync: (k, v) => wx.setStorageSync(k, v),
    removeStorageSync: (k) => wx.removeStorageSync(k),
  }
}
