// example/pages/scan/scan.js
// The page a website's scan login code opens (scan_login's page): the
// code's scene is the website's ticket.
/** @type {import('caddy-wxauth-client').Client} */
const client = getApp().client

Page({
  data: {
    scene: '',
    state: 'asking', // asking, done, canceled, failed
    error: '',
  },

  /** @param {Record<string, string | undefined>} query */
  async onLoad(query) {
    const scene = query.scene || ''
    this.setData({ scene })
    try {
      // The website now says "confirm on your phone". Logs in first
      // (silently) when the mini program has no session yet.
      await client.scan.scanned(scene)
    } catch (e) {
      this.fail(e) // an expired or used code: scan a new one
    }
  },

  async onConfirm() {
    try {
      await client.scan.confirm(this.data.scene)
      this.setData({ state: 'done' }) // the website's page is logged in now
    } catch (e) {
      this.fail(e)
    }
  },

  async onCancel() {
    try {
      await client.scan.cancel(this.data.scene)
    } catch (_) {
      // Whatever the gateway says, this page is done.
    }
    this.setData({ state: 'canceled' })
  },

  /** @param {unknown} e */
  fail(e) {
    this.setData({ state: 'failed', error: /** @type {Error} */ (e).message })
  },
})
