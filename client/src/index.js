// caddy-wxauth-client: the mini-program side of the caddy-wxauth gateway.
//
// One client per gateway. It logs in with the platform's login() and
// POST <endpoints>/login, keeps the tokens in the platform's storage, sends
// the access token on every request, and renews it: a refresh when it
// expires, a new login when the session has ended. Every renewal is single
// flight: the requests waiting at that moment share one. Nothing here ever
// writes to the console.
//
// This file is the ESM source; dist/index.cjs is generated from it by
// build.mjs (npm run build). It has no imports and a single export list at
// the end, which is what lets that build stay a line replacement.

/** Codes of the gateway's 401s that a new token can cure. */
const TOKEN_ERRORS = ['token_expired', 'token_revoked', 'token_invalid', 'login_required']

const DEFAULT_STORAGE_KEY = 'wxauth_session'

/**
 * The one error every operation rejects with. `code` is the gateway's
 * `error` field (`content_rejected`, `token_revoked`, ...) or one of the
 * client's own: `network_error`, `login_failed`, `bad_answer`,
 * `invalid_request`. `status` is the HTTP status, 0 when there was none.
 */
class WxAuthError extends Error {
  constructor(code, message, details) {
    super(message)
    this.name = 'WxAuthError'
    this.code = code
    this.status = (details && details.status) || 0
    if (details && details.retryAfter !== undefined) this.retryAfter = details.retryAfter
  }
}

/**
 * createClient({ base, platform, ... }) makes a client for one gateway.
 * `platform` is the object whose APIs it uses: `wx`, `qq`, `uni` or `Taro`,
 * passed in (nothing is guessed from globals).
 */
function createClient(options) {
  const opts = options || {}
  if (typeof opts.base !== 'string' || !/^https?:\/\/[^/]/.test(opts.base)) {
    throw new TypeError('createClient: "base" must be the gateway site\'s URL, e.g. "https://api.example.com"')
  }
  const api = opts.platform
  if (!api || typeof api.login !== 'function' || typeof api.request !== 'function') {
    throw new TypeError('createClient: "platform" must be the platform object (wx, qq, uni or Taro)')
  }
  const base = opts.base.replace(/\/+$/, '')
  const prefix = '/' + (opts.endpoints === undefined ? 'wx' : String(opts.endpoints)).replace(/^\/+|\/+$/g, '')
  const gateway = base + (prefix === '/' ? '' : prefix)
  const appid = opts.appid
  const storageKey = opts.storageKey || DEFAULT_STORAGE_KEY
  const leewayMs = 1000 * (opts.refreshLeeway === undefined ? 60 : opts.refreshLeeway)
  const maxWaitMs = 1000 * (opts.maxRetryAfter === undefined ? 5 : opts.maxRetryAfter)
  const now = opts.now || Date.now

  // The session: tokens and who is logged in. Read back from storage at
  // start, written on every change.
  let session = load()
  // The renewal in flight (a refresh, a login, or a refresh that turned
  // into a login), shared by everyone who needs a token meanwhile.
  let renewal = null

  // ---- platform adapter ----

  // call runs one of the platform's callback APIs as a promise. All four
  // platforms take success/fail callbacks; Taro (and uni-app without
  // callbacks) also return a promise, which is only kept from going
  // unhandled: the callbacks are the answer.
  function call(name, params, failCode) {
    return new Promise((resolve, reject) => {
      const fail = (err) => {
        const msg = (err && err.errMsg) || name + ' failed'
        reject(new WxAuthError(failCode, String(msg)))
      }
      if (typeof api[name] !== 'function') {
        reject(new WxAuthError('invalid_request', 'the platform object has no ' + name + '()'))
        return
      }
      let task
      try {
        task = api[name](Object.assign({}, params, { success: resolve, fail }))
      } catch (e) {
        fail({ errMsg: name + ' threw: ' + ((e && e.message) || e) })
        return
      }
      if (task && typeof task.then === 'function') task.then(undefined, () => {})
    })
  }

  function load() {
    try {
      let s = api.getStorageSync(storageKey)
      if (typeof s === 'string') s = s ? JSON.parse(s) : null
      if (s && typeof s.access_token === 'string' && typeof s.refresh_token === 'string' &&
          typeof s.expires_at === 'number' && typeof s.refresh_at === 'number') return s
    } catch (_) {
      // Unreadable storage: start logged out.
    }
    return null
  }

  function save() {
    try {
      if (session) api.setStorageSync(storageKey, JSON.stringify(session))
      else api.removeStorageSync(storageKey)
    } catch (_) {
      // Storage full or unavailable: the session still works from memory
      // until the app is closed.
    }
  }

  // ---- HTTP ----

  // send makes one exchange with the gateway's endpoints and answers
  // { statusCode, data, header } with data parsed when it is JSON.
  function send(method, path, body, token) {
    const header = {}
    if (body !== undefined) header['Content-Type'] = 'application/json'
    if (token) header.Authorization = 'Bearer ' + token
    return call('request', { url: gateway + path, method, data: body, header }, 'network_error').then(parsed)
  }

  function upload(path, filePath, nickname, token) {
    const formData = nickname === undefined ? {} : { nickname }
    return call('uploadFile', {
      url: gateway + path, filePath, name: 'avatar', formData,
      header: { Authorization: 'Bearer ' + token },
    }, 'network_error').then(parsed)
  }

  // exchange sends once, and again at most once for each of: a network
  // failure (only where retryNetwork: the login and refresh posts, which
  // the gateway makes safe to repeat), and a 429 whose Retry-After is
  // within maxRetryAfter. So at most three attempts.
  async function exchange(sendOnce, retryNetwork) {
    let networkRetried = !retryNetwork
    let waited = false
    for (;;) {
      let res
      try {
        res = await sendOnce()
      } catch (e) {
        if (e.code === 'network_error' && !networkRetried) {
          networkRetried = true
          continue
        }
        throw e
      }
      const wait = waited ? null : retryWait(res)
      if (wait === null) return res
      waited = true
      await sleep(wait)
    }
  }

  // retryWait is how long to wait before trying a 429 again, or null when
  // it is not a 429 or its Retry-After is missing or over the bound.
  function retryWait(res) {
    if (res.statusCode !== 429) return null
    const s = retryAfter(res)
    return s !== undefined && s * 1000 <= maxWaitMs ? s * 1000 : null
  }

  // ---- the session ----

  function keep(answer) {
    if (!answer || typeof answer.access_token !== 'string' || typeof answer.refresh_token !== 'string' ||
        typeof answer.expires_in !== 'number') {
      throw new WxAuthError('bad_answer', 'the gateway\'s session answer lacks its tokens')
    }
    session = Object.assign(
      { access_token: answer.access_token, refresh_token: answer.refresh_token },
      timing(answer.expires_in),
      {
        openid: answer.openid,
        unionid: answer.unionid,
        appid: answer.appid,
        has_profile: !!answer.has_profile,
        profile: answer.profile || null,
      })
    save()
  }

  // keepAccess takes the new access token of a profile or phone answer.
  function keepAccess(answer, change) {
    if (!session || !answer || typeof answer.access_token !== 'string') return
    Object.assign(session, { access_token: answer.access_token }, timing(answer.expires_in), change)
    save()
  }

  // timing: the token expires expires_in from now; it is renewed ahead
  // when a request starts within refreshLeeway of that, but never in the
  // first half of its life (so a short access_ttl does not mean a refresh
  // per request).
  function timing(expiresIn) {
    const life = 1000 * (typeof expiresIn === 'number' ? expiresIn : 0)
    const t = now()
    return { expires_at: t + life, refresh_at: t + Math.max(life - leewayMs, life / 2) }
  }

  function drop() {
    session = null
    save()
  }

  function user() {
    return {
      openid: session.openid,
      unionid: session.unionid,
      appid: session.appid,
      has_profile: session.has_profile,
      profile: session.profile,
    }
  }

  // renew gets a new token: a refresh (need "refresh") or a login (need
  // "login"). stale is the access token the caller found wanting; if the
  // session has another one by now, that one is the answer. A renewal in
  // flight is joined, whatever its kind.
  function renew(need, stale) {
    if (renewal) return renewal
    if (stale !== undefined && session && session.access_token !== stale) return Promise.resolve()
    const refreshToken = need === 'refresh' && session ? session.refresh_token : null
    // The work starts on the next tick, so that renewal is set before any
    // platform API runs: whoever asks meanwhile joins this renewal.
    renewal = Promise.resolve()
      .then(() => (refreshToken ? refreshOrLogin(refreshToken) : freshLogin()))
      .finally(() => { renewal = null })
    return renewal
  }

  // refresh trades a refresh token: true when it did, false when the
  // gateway says the session is over (401), an error otherwise. A lost
  // answer is retried once with the same token (the gateway's
  // refresh_grace gives the same successor).
  async function refresh(refreshToken) {
    const res = await exchange(() => send('POST', '/refresh', { refresh_token: refreshToken }), true)
    if (res.statusCode === 200) {
      keep(res.data)
      return true
    }
    if (res.statusCode === 401) return false
    throw errorOf(res)
  }

  async function refreshOrLogin(refreshToken) {
    if (await refresh(refreshToken)) return
    drop()
    await freshLogin()
  }

  async function freshLogin() {
    const got = await call('login', {}, 'login_failed')
    if (!got || typeof got.code !== 'string' || !got.code) {
      throw new WxAuthError('login_failed', (got && got.errMsg) || 'login() gave no code')
    }
    const body = appid ? { code: got.code, appid } : { code: got.code }
    // The same code may be posted again: the gateway answers a retry of a
    // code with a session for the same user.
    const res = await exchange(() => send('POST', '/login', body), true)
    if (res.statusCode !== 200) throw errorOf(res)
    keep(res.data)
  }

  // token answers an access token to send now: after any renewal in
  // flight, a login if there is no session, and a refresh if the token is
  // near its end.
  async function token() {
    if (renewal) await renewal
    if (!session) await renew('login')
    else if (now() >= session.refresh_at) {
      const current = session.access_token
      try {
        await renew('refresh', current)
      } catch (e) {
        // A refresh ahead of time that could not reach the gateway: the
        // token in hand is still good until it expires.
        if (!(e.code === 'network_error' && session && session.access_token === current && now() < session.expires_at)) throw e
      }
    }
    if (!session) throw new WxAuthError('login_required', 'logged out while the request waited')
    return session.access_token
  }

  // authorized sends with the access token, and again at most once after
  // a renewal (a 401 the gateway gave for the token) and at most once
  // after a 429 within maxRetryAfter. So at most three attempts, never a
  // loop. Network failures are not retried: the request may not be safe
  // to repeat.
  async function authorized(sendWith) {
    let tok = await token()
    let renewed = false
    let waited = false
    for (;;) {
      const res = await sendWith(tok)
      const code = tokenError(res)
      if (code && !renewed) {
        renewed = true
        await renew(code === 'token_expired' ? 'refresh' : 'login', tok)
        if (!session) throw new WxAuthError('login_required', 'logged out while the request waited')
        tok = session.access_token
        continue
      }
      const wait = waited ? null : retryWait(res)
      if (wait === null) return res
      waited = true
      await sleep(wait)
    }
  }

  // ---- the API ----

  async function request(options) {
    const o = Object.assign({}, options)
    const url = ownURL(o.url)
    delete o.success
    delete o.fail
    delete o.complete
    const res = await authorized((tok) => call('request', Object.assign({}, o, {
      url,
      header: withBearer(o.header, tok),
    }), 'network_error'))
    const code = tokenError(res)
    if (code) throw errorOf(parsed(res))
    return res
  }

  // ownURL keeps the token on the gateway's site: a path is put under
  // base, and an absolute URL must already be there.
  function ownURL(url) {
    if (typeof url === 'string' && url[0] === '/' && url[1] !== '/') return base + url
    if (typeof url === 'string' && (url === base || url.startsWith(base + '/') || url.startsWith(base + '?'))) return url
    throw new WxAuthError('invalid_request', 'request() sends the access token only to ' + base + ': pass a path such as "/orders", or a URL under it')
  }

  // login answers who is logged in, logging in first when no session is
  // kept (the first launch, or after logout).
  async function login() {
    if (renewal) await renewal
    if (!session) await renew('login')
    return user()
  }

  async function me() {
    return answer(await authorized((tok) => send('GET', '/me', undefined, tok)))
  }

  async function updateProfile(change) {
    const c = change || {}
    let res
    if (c.avatarPath) {
      res = await authorized((tok) => upload('/profile', c.avatarPath, c.nickname, tok))
    } else if (c.nickname !== undefined) {
      res = await authorized((tok) => send('POST', '/profile', { nickname: c.nickname }, tok))
    } else {
      throw new WxAuthError('invalid_request', 'updateProfile needs a nickname, an avatarPath, or both')
    }
    const a = answer(res)
    keepAccess(a, { profile: a.profile || null, has_profile: !!a.profile })
    return a.profile
  }

  async function savePhone(code) {
    if (typeof code !== 'string' || !code) {
      throw new WxAuthError('invalid_request', 'savePhone needs the getPhoneNumber button\'s e.detail.code')
    }
    const a = answer(await authorized((tok) => send('POST', '/phone', { code }, tok)))
    keepAccess(a)
    return a.phone
  }

  // logout ends the session on the gateway (every session of the user
  // with everywhere) and forgets it here, even when the gateway could not
  // be reached (the error then says so).
  async function logout(options) {
    const everywhere = !!(options && options.everywhere)
    if (renewal) await renewal.catch(() => {})
    if (!session) return
    const body = everywhere ? { everywhere: true } : undefined
    try {
      let res = await send('POST', '/logout', body, session.access_token)
      if (tokenError(res) === 'token_expired' && await refresh(session.refresh_token)) {
        res = await send('POST', '/logout', body, session.access_token)
      }
      // A session the gateway no longer knows is as logged out as it gets.
      if (res.statusCode !== 204 && !tokenError(res)) throw errorOf(res)
    } finally {
      drop()
    }
  }

  return { request, login, me, updateProfile, savePhone, logout }
}

// ---- helpers without state ----

function parsed(res) {
  let data = res && res.data
  if (typeof data === 'string' && data) {
    try {
      data = JSON.parse(data)
    } catch (_) {
      // Not JSON: left as the string.
    }
  }
  return { statusCode: res.statusCode, data, header: res.header || {} }
}

// tokenError is the gateway's 401 code for the token, or undefined.
function tokenError(res) {
  if (res.statusCode !== 401) return undefined
  const data = parsed(res).data
  const code = data && data.error
  return TOKEN_ERRORS.indexOf(code) >= 0 ? code : undefined
}

function answer(res) {
  if (res.statusCode >= 200 && res.statusCode < 300 && res.data && typeof res.data === 'object') return res.data
  throw errorOf(res)
}

function errorOf(res) {
  const d = res.data
  const details = { status: res.statusCode, retryAfter: retryAfter(res) }
  if (d && typeof d.error === 'string') {
    return new WxAuthError(d.error, typeof d.message === 'string' ? d.message : d.error, details)
  }
  return new WxAuthError('bad_answer', 'the gateway answered HTTP ' + res.statusCode + ' without a JSON error', details)
}

// retryAfter is the answer's Retry-After in seconds, or undefined.
function retryAfter(res) {
  const v = header(res.header, 'retry-after')
  if (v === undefined || v === '') return undefined
  if (/^\d+$/.test(String(v).trim())) return Number(v)
  const at = Date.parse(v)
  return isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000))
}

// header reads a response header whatever the platform did to its case.
function header(headers, name) {
  for (const k in headers || {}) {
    if (k.toLowerCase() === name) return headers[k]
  }
  return undefined
}

function withBearer(headers, token) {
  const out = {}
  for (const k in headers || {}) {
    if (k.toLowerCase() !== 'authorization') out[k] = headers[k]
  }
  out.Authorization = 'Bearer ' + token
  return out
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

export { createClient, WxAuthError }
