// A bot in Node.js behind --bot-url that hands the conversation to a
// person: it answers a few things itself, asks for a person when the user
// is unhappy or asks for one, and says something when a person hands back.
// No packages needed.
//
//   ANYWHERE_SECRET=s node examples/handoff_bot.js 4000
//   ANYWHERE_SECRET=s build/anywhere --bot-url http://127.0.0.1:4000/ --operators ops.txt
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');

const secret = process.env.ANYWHERE_SECRET || '';
const port = Number(process.argv[2] || 4000);

function answer(msg) {
  const text = (msg.text || '').toLowerCase();
  switch (msg.type) {
  case 'hello':
    return [{ text: 'Hi! Ask me about your order, or type "person" to talk to one of us.' }];
  case 'handoff_end':
    return [{ text: `Thanks for your patience${msg.operator ? ` with ${msg.operator}` : ''}. Anything else?` }];
  case 'message':
    if (/\b(person|human|agent)\b/.test(text)) {
      return [{ text: 'Sure, I am getting someone for you.' }, { type: 'handoff', reason: 'asked for a person' }];
    }
    if (/\b(angry|refund|complaint)\b/.test(text)) {
      return [{ text: 'I am sorry. A colleague will take this over.' }, { type: 'handoff', reason: 'unhappy user' }];
    }
    return [{ text: `About "${msg.text}": your order is on its way.` }];
  default:
    return [];
  }
}

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', () => {
    const want = 'sha256=' + crypto.createHmac('sha256', secret).update(body).digest('hex');
    const sig = req.headers['x-anywhere-signature'] || '';
    if (sig.length !== want.length || !crypto.timingSafeEqual(Buffer.from(sig), Buffer.from(want))) {
      res.writeHead(401).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer(JSON.parse(body))));
  });
});
server.listen(port, '127.0.0.1', () => console.log(`handoff bot on http://127.0.0.1:${server.address().port}/`));
