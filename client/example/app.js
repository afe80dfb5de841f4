// example/app.js
import { createClient } from 'caddy-wxauth-client'

App({
  // One client for the app: pages reach it with getApp().client.
  client: createClient({
    base: 'https://api.example.com', // the gateway's site, a request domain of the mini program
    platform: wx,
  }),

  onLaunch() {
    // Optional: log in now rather than on the first request. A session
    // kept from the last launch is used as it is.
    this.client.login().catch(() => {
      // Offline, or the gateway refused: the first request tries again.
    })
  },
})
