// Type-checked by `tsc --noEmit` (tsconfig.json), never run: the
// declarations as an ESM user sees them, with WeChat's official typings.
import { createClient, WxAuthError } from 'caddy-wxauth-client'
import type { Client, Me, PhoneNumber, Platform, Profile, RequestResult, ScanLogin, User } from 'caddy-wxauth-client'

// The real wx, as WeChat's typings declare it, is a Platform.
const fromGlobal: Client = createClient({ base: 'https://api.example.com', platform: wx })
declare const typedWx: WechatMiniprogram.Wx
const platform: Platform = typedWx
const client = createClient({
  base: 'https://api.example.com',
  platform,
  endpoints: '/wx',
  appid: 'wx1111111111111111',
  storageKey: 'wxauth_session',
  refreshLeeway: 60,
  maxRetryAfter: 5,
  now: Date.now,
})

interface Orders { orders: string[] }

async function use(): Promise<void> {
  const user: User = await client.login()
  const openid: string = user.openid
  const res: RequestResult<Orders> = await client.request<Orders>({
    url: '/api/orders', method: 'POST', data: { page: 1 }, header: { 'X-Trace': '1' }, timeout: 5000,
  })
  const first: string | undefined = res.data.orders[0]
  const status: number = res.statusCode
  const me: Me = await client.me()
  const hasPhone: boolean = me.has_phone
  const profile: Profile = await client.updateProfile({ nickname: 'x', avatarPath: 'wxfile://tmp_1.png' })
  await client.updateProfile({ nickname: profile.nickname })
  const phone: PhoneNumber = await client.savePhone('code')
  const scan: ScanLogin = client.scan
  await scan.scanned('scene')
  await client.scan.confirm(decodeURIComponent('scene'))
  await client.scan.cancel('scene')
  await client.logout()
  await client.logout({ everywhere: true })
  void [fromGlobal, openid, first, status, hasPhone, phone.phone_number]
}

function handle(e: unknown): string {
  if (e instanceof WxAuthError) {
    const retry: number | undefined = e.retryAfter
    if (e.code === 'content_rejected' || e.code === 'network_error') return e.message
    return `${e.status} ${e.code} ${retry ?? ''}`
  }
  return String(e)
}

// Mistakes the declarations catch.
// @ts-expect-error the platform object is required
createClient({ base: 'https://api.example.com' })
// @ts-expect-error an object that is not a platform
createClient({ base: 'https://api.example.com', platform: { login() {} } })
// @ts-expect-error a request needs its url
void client.request({ method: 'GET' })
// @ts-expect-error not an HTTP method wx.request knows
void client.request({ url: '/x', method: 'FETCH' })
// @ts-expect-error savePhone takes the code string
void client.savePhone({ code: 'x' })
// @ts-expect-error a scan step takes the scene string
void client.scan.confirm({ ticket: 'x' })
// @ts-expect-error the field is avatarPath
void client.updateProfile({ avatar: 'wxfile://tmp_1.png' })

void [use, handle]
