// Type-checked, never run: the declarations as a require() user sees them.
import lib = require('caddy-wxauth-client')

const client: lib.Client = lib.createClient({ base: 'https://api.example.com', platform: wx })

async function use(): Promise<void> {
  try {
    await client.request({ url: '/api/orders' })
  } catch (e) {
    if (e instanceof lib.WxAuthError && e.code === 'token_revoked') await client.login()
  }
}

void use
