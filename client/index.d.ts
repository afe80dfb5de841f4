// Declarations of caddy-wxauth-client (src/index.js).

/** A platform API's failure, as the platforms report it. */
export interface PlatformFailure {
  errMsg: string
}

/** What the platform's request() gives its success callback. */
export interface PlatformResponse<T = any> {
  statusCode: number
  data: T
  header: Record<string, any>
}

/** What the platform's uploadFile() gives its success callback: data is the body text. */
export interface PlatformUploadResponse {
  statusCode: number
  data: string
}

/**
 * The part of a platform object the client uses: `wx` and `qq` in mini
 * programs, `uni` in uni-app, `Taro` in Taro. Each API is called with
 * success/fail callbacks; a returned task or promise is not needed.
 */
export interface Platform {
  login(option: {
    success: (res: { code: string; errMsg?: string }) => void
    fail: (err: PlatformFailure) => void
  }): unknown
  request(option: {
    url: string
    method?: any
    data?: any
    header?: Record<string, any>
    success: (res: PlatformResponse) => void
    fail: (err: PlatformFailure) => void
  }): unknown
  uploadFile(option: {
    url: string
    filePath: string
    name: string
    formData?: Record<string, any>
    header?: Record<string, any>
    success: (res: PlatformUploadResponse) => void
    fail: (err: PlatformFailure) => void
  }): unknown
  getStorageSync(key: string): any
  setStorageSync(key: string, data: any): void
  removeStorageSync(key: string): void
}

export interface ClientOptions {
  /** The gateway site's URL, e.g. "https://api.example.com" (no path). */
  base: string
  /** The platform object: wx, qq, uni or Taro. */
  platform: Platform
  /** The gateway's endpoints prefix (its `endpoints` option); default "/wx". */
  endpoints?: string
  /** Sent with every login; needed when the gateway serves several mini programs. */
  appid?: string
  /** The storage key the session is kept under; default "wxauth_session". */
  storageKey?: string
  /** Refresh ahead when a request starts within this many seconds of the token's expiry (never in its first half-life); default 60. */
  refreshLeeway?: number
  /** Wait for a 429's Retry-After (once) when it is at most this many seconds; default 5. Longer: the error surfaces. */
  maxRetryAfter?: number
  /** The clock, in milliseconds; default Date.now. */
  now?: () => number
}

export interface Profile {
  nickname: string
  avatar_url: string
}

/** Who is logged in, as the last session answer said. */
export interface User {
  openid: string
  unionid?: string
  appid: string
  has_profile: boolean
  profile: Profile | null
}

/** What GET /wx/me answers: the stored profile, now. */
export interface Me extends User {
  has_phone: boolean
}

export interface PhoneNumber {
  phone_number: string
  pure_phone_number: string
  country_code: string
}

/** Options of client.request: those of wx.request, without the callbacks. */
export interface RequestOptions {
  /** A path on the gateway's site ("/orders"), or an absolute URL under `base`. */
  url: string
  method?: 'OPTIONS' | 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'TRACE' | 'CONNECT' | 'PATCH'
  data?: string | Record<string, any> | ArrayBuffer
  header?: Record<string, any>
  timeout?: number
  dataType?: string
  responseType?: string
  [option: string]: unknown
}

/** What client.request answers: the platform's request() answer, for any HTTP status. */
export interface RequestResult<T = any> extends PlatformResponse<T> {
  [field: string]: unknown
}

export interface ProfileChange {
  /** The new nickname (from `<input type="nickname">`). */
  nickname?: string
  /** A chosen avatar's local path (the chooseAvatar button's e.detail.avatarUrl): uploaded with uploadFile. */
  avatarPath?: string
}

export interface Client {
  /** wx.request with the access token, logging in or renewing it as needed. */
  request<T = any>(options: RequestOptions): Promise<RequestResult<T>>
  /** Who is logged in; logs in first when no session is kept. */
  login(): Promise<User>
  /** GET /wx/me. */
  me(): Promise<Me>
  /** POST /wx/profile: multipart with the avatar file, JSON for a nickname alone. Answers the new profile. */
  updateProfile(change: ProfileChange): Promise<Profile>
  /** POST /wx/phone with the getPhoneNumber button's code. Answers the number. */
  savePhone(code: string): Promise<PhoneNumber>
  /** POST /wx/logout (every session of the user with everywhere), and forget the session here. */
  logout(options?: { everywhere?: boolean }): Promise<void>
  /**
   * The `src` for a `<web-view>` that opens `pageURL` (an absolute URL of a
   * site the gateway serves) logged in as this user: POST /wx/handoff gives a
   * single-use ticket (60 s), which the page's host trades for its cookie
   * session before redirecting to the page. Call it just before showing the
   * web-view.
   */
  webviewURL(pageURL: string): Promise<string>
  /** Scan login, on the page a website's mini-program code opens. */
  scan: ScanLogin
}

/**
 * A website's scan login, from the mini-program page its code opens.
 * `scene` is that page's `onLoad(query)` `query.scene` (URI-encoded as it
 * arrives, or decoded). Each call is made as the logged-in user, logging
 * in first when there is no session; a refused ticket (used, expired,
 * canceled, another user's or another app's) rejects with `invalid_code`.
 */
export interface ScanLogin {
  /** POST /wx/scan/scanned: the page opened; the website says "confirm on your phone". */
  scanned(scene: string): Promise<void>
  /** POST /wx/scan/confirm: the user tapped "log in"; the website's browser gets a session of this user. */
  confirm(scene: string): Promise<void>
  /** POST /wx/scan/cancel: the user tapped "cancel". */
  cancel(scene: string): Promise<void>
}

export declare function createClient(options: ClientOptions): Client

/** Client error codes, besides the gateway's own `error` codes. */
export type ClientErrorCode = 'network_error' | 'login_failed' | 'bad_answer' | 'invalid_request'

/** The gateway's error codes (its error table). */
export type GatewayErrorCode =
  | 'invalid_request'
  | 'body_too_large'
  | 'unsupported_media_type'
  | 'invalid_code'
  | 'login_blocked'
  | 'login_required'
  | 'token_invalid'
  | 'token_expired'
  | 'token_revoked'
  | 'decrypt_failed'
  | 'content_rejected'
  | 'forbidden_origin'
  | 'rate_limited'
  | 'platform_unavailable'
  | 'internal_error'

/** The one error every operation rejects with. */
export declare class WxAuthError extends Error {
  constructor(code: string, message: string, details?: { status?: number; retryAfter?: number })
  readonly name: 'WxAuthError'
  /** The gateway's `error` code, or the client's own. */
  code: GatewayErrorCode | ClientErrorCode | (string & {})
  /** The gateway's `message`, or the client's. */
  message: string
  /** The HTTP status; 0 when there was no answer. */
  status: number
  /** Retry-After in seconds, when the answer had one (429). */
  retryAfter?: number
}
