// Starts Debian's Chromium through playwright-core (which cannot download a
// browser here), headless, for the browser tests. Each test opens its own
// browser context: a person with their own cookies and storage.
'use strict';
const { chromium } = require('playwright-core');

async function launch() {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic', '--disable-features=LocalNetworkAccessChecks'],
  });
  return {
    browser,
    async close() { await browser.close(); },
  };
}

// The texts of the chat's messages, in order: "bot: …" or "me: …" (notices
// of the page itself are left out).
async function transcript(page) {
  return page.$$eval('#messages .msg.me, #messages .msg.bot', (els) => els.map((e) =>
    `${e.classList.contains('me') ? 'me' : 'bot'}: ${e.querySelector('.text').textContent}`));
}

module.exports = { launch, transcript };
