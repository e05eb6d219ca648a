// The raw Node peer: a websocket echo server on the `ws` package alone, no
// framework, as a Node developer would write one by hand. Every text frame is
// sent back as it came. Started by bench/run.sh; PORT sets the port.
const WebSocket = require('ws');

const port = Number(process.env.PORT || 3000);
const server = new WebSocket.Server({ host: '127.0.0.1', port, perMessageDeflate: false });

server.on('connection', (socket) => {
    socket.on('message', (data) => socket.send(data));
});
server.on('listening', () => console.log(`ws echo on port ${port}`));
