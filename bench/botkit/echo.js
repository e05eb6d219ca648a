// The peer: Botkit 4 with its web adapter, as users run it, with a bot that
// does what `anywhere --bot echo` does: each message is answered at once with
// its own text, on the websocket and on the webhook (/api/messages). A
// session's hello gets one `session` frame back, as anywhere sends one, so a
// client knows the session is up. Started by bench/run.sh; PORT sets the port.
const { Botkit } = require('botkit');
const { WebAdapter } = require('botbuilder-adapter-web');

const adapter = new WebAdapter({});
const controller = new Botkit({ adapter, disable_console: true });

controller.on('message', async (bot, message) => {
    await bot.reply(message, message.text || '');
});

controller.on(['hello', 'welcome_back', 'reconnect'], async (bot, message) => {
    await bot.reply(message, { channelData: { type: 'session', user: message.user } });
});

controller.ready(() => console.log(`botkit echo bot on port ${process.env.PORT || 3000}`));
