"""The whole server on MongoDB (mockupdb) through an outage: the database
first refuses writes (not primary), then goes away entirely, then comes back
on the same port. Chat over the webhook keeps answering throughout; healthz
says the store is down meanwhile; once it is back every record that was
acknowledged to a client is written, each exactly once, with the write
concern --write-concern asked for.

Run by ctest as: mongo_outage.py ANYWHERE_BINARY"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from bson.int64 import Int64
from mockupdb import MockupDB

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'unit', 'store'))
from mongo_mock import matches  # noqa: E402  the filter the store's finds use

HANDSHAKE = {'ismaster': True, 'isWritablePrimary': True, 'helloOk': True, 'maxWireVersion': 13,
             'minWireVersion': 0, 'maxBsonObjectSize': 16777216, 'maxMessageSizeBytes': 48000000,
             'maxWriteBatchSize': 100000, 'ok': 1}


class Mongo:
    """A mock that keeps what it is sent, and can refuse writes."""

    def __init__(self, port=None):
        self.docs = {}  # (user, seq, sub) -> times inserted
        self.stored = {}  # (user, seq, sub) -> the document, for finds
        self.write_concerns = set()
        self.refuse = False
        self.lock = threading.Lock()
        self.start(port)

    def start(self, port):
        self.server = MockupDB(port=port or 0)
        self.server.autoresponds(self.answer)
        self.server.run()
        self.port = self.server.port

    def answer(self, r):
        name = (r.command_name or '').lower()
        if name in ('ismaster', 'hello'):
            return r.replies(HANDSHAKE)
        if name in ('ping', 'endsessions', 'createindexes'):
            return r.ok()
        if name == 'find':
            return self.find(r)
        if name == 'insert':
            if self.refuse:
                return r.replies({'ok': 0, 'code': 10107, 'errmsg': 'not primary'})
            docs = list(r.docs[1:]) if len(r.docs) > 1 else list(r.doc.get('documents', []))
            with self.lock:
                self.write_concerns.add(repr(r.doc.get('writeConcern', {}).get('w')))
                for d in docs:
                    key = (d['_id']['u'], d['_id']['s'], d['_id']['k'])
                    self.docs[key] = self.docs.get(key, 0) + 1
                    self.stored.setdefault(key, d)
            return r.ok(n=len(docs))
        return r.ok()

    def find(self, r):
        cmd = r.docs[0]
        with self.lock:
            found = [d for d in self.stored.values() if matches(d, cmd.get('filter', {}))]
        for key, direction in reversed(list(cmd.get('sort', {}).items())):
            found.sort(key=lambda d: d[key], reverse=direction < 0)
        if cmd.get('limit'):
            found = found[:abs(cmd['limit'])]
        return r.replies({'cursor': {'id': Int64(0), 'ns': 'anywhere.history', 'firstBatch': found}, 'ok': 1})

    def messages(self):
        """The records of messages, not the seq reservations (sub -1)."""
        with self.lock:
            return {k: v for k, v in self.docs.items() if k[2] >= 0}


def http(port, path, body=None):
    req = urllib.request.Request('http://127.0.0.1:%d%s' % (port, path),
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={'content-type': 'application/json'})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.loads(res.read() or b'null')
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b'null')


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def wait(pred, seconds, what):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError('timed out: ' + what)


def main():
    mongo = Mongo(free_port())
    port = free_port()
    data = tempfile.mkdtemp(prefix='anywhere-mongo-')
    uri = 'mongodb://127.0.0.1:%d/anywhere?serverSelectionTimeoutMS=500&connectTimeoutMS=500' % mongo.port
    server = subprocess.Popen([sys.argv[1], '--port', str(port), '--data-dir', data, '--bot', 'echo',
                               '--store', uri, '--write-concern', '1', '--rate', '0', '--workers', '2',
                               '--io-threads', '2'],
                              stderr=subprocess.PIPE, text=True)
    log = []
    threading.Thread(target=lambda: log.extend(server.stderr), daemon=True).start()
    try:
        wait(lambda: any('listening on' in l for l in log), 15, 'the server starts')
        said = []

        def chat(tag, n):
            for i in range(n):
                text = '%s %d' % (tag, i)
                status, body = http(port, '/api/messages', {'type': 'message', 'user': 'm1', 'text': text})
                expect(status == 200 and body[0]['text'] == text, 'chat answers during %s: %r' % (tag, body))
                said.append(body[0]['seq'])

        chat('healthy', 3)
        wait(lambda: len(mongo.messages()) == 6, 10, 'healthy records written')
        mongo.refuse = True                       # the primary steps down
        chat('refused', 3)
        wait(lambda: http(port, '/healthz')[0] == 503, 10, 'healthz says the store is down')
        mongo.server.stop()                       # then the database goes away
        chat('gone', 3)
        expect(http(port, '/healthz')[0] == 503, 'still down')
        mongo.refuse = False
        mongo.start(mongo.port)                   # and comes back
        wait(lambda: http(port, '/healthz')[0] == 200, 30, 'healthz says the store is back')
        wait(lambda: len(mongo.messages()) == 18, 10,
             'every held record written (%d of 18)' % len(mongo.messages()))
        expect(all(v >= 1 for v in mongo.messages().values()), 'each record there')
        seqs = sorted(k[1] for k in mongo.messages() if k[2] == 0)
        expect(seqs == sorted(said), 'every acknowledged reply stored: %r vs %r' % (seqs, said))
        expect(any('store_down' in l for l in log) and any('store_up' in l for l in log), 'outage logged')
        expect(mongo.write_concerns == {'1'}, '--write-concern 1 on every insert: %r' % mongo.write_concerns)
    except Exception:
        # what the server said is what explains a failure
        server.terminate()
        server.wait(timeout=30)
        sys.stderr.write('server log:\n' + ''.join(log))
        raise
    finally:
        server.terminate()
        code = server.wait(timeout=30)
        mongo.server.stop()
        shutil.rmtree(data, ignore_errors=True)
    expect(code == 0, 'the server exits 0, got %d' % code)
    print('mongo_outage: ok')


if __name__ == '__main__':
    main()
