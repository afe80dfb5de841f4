// example/pages/profile/profile.js
/** @type {import('caddy-wxauth-client').Client} */
const client = getApp().client

Page({
  data: {
    profile: /** @type {import('caddy-wxauth-client').Profile | null} */ (null),
    avatarPath: '', // a chosen avatar, not uploaded yet
    phone: '',
    orders: /** @type {string[]} */ ([]),
    error: '',
  },

  async onLoad() {
    try {
      const me = await client.me() // logs in first if needed
      this.setData({ profile: me.profile })
      const res = await client.request({ url: '/api/orders' }) // the app behind the gateway
      if (res.statusCode === 200) this.setData({ orders: res.data.orders })
    } catch (e) {
      this.setData({ error: /** @type {Error} */ (e).message })
    }
  },

  /** @param {WechatMiniprogram.CustomEvent<{ avatarUrl: string }>} e */
  onChooseAvatar(e) {
    this.setData({ avatarPath: e.detail.avatarUrl })
  },

  // The form gives the nickname input's value also when the user picked
  // the WeChat nickname from the keyboard.
  /** @param {WechatMiniprogram.FormSubmit} e */
  async onSave(e) {
    const nickname = String(e.detail.value.nickname || '').trim()
    try {
      const profile = await client.updateProfile({
        nickname: nickname || undefined,
        avatarPath: this.data.avatarPath || undefined,
      })
      this.setData({ profile, avatarPath: '', error: '' })
    } catch (err) {
      const error = /** @type {import('caddy-wxauth-client').WxAuthError} */ (err)
      this.setData({
        error: error.code === 'content_rejected' ? '这个昵称或头像未通过审核，请换一个' : error.message,
      })
    }
  },

  /** @param {WechatMiniprogram.ButtonGetPhoneNumber} e */
  async onGetPhoneNumber(e) {
    if (!e.detail.code) return // the user declined
    try {
      const phone = await client.savePhone(e.detail.code)
      this.setData({ phone: phone.phone_number })
    } catch (err) {
      this.setData({ error: /** @type {Error} */ (err).message })
    }
  },

  async onLogout() {
    await client.logout().catch(() => {}) // forgotten here even if the gateway was not reached
    this.setData({ profile: null, phone: '', orders: [] })
  },
})
