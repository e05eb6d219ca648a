"""Runs a store test against MongoDB's wire-protocol mock server (mockupdb),
in one of two modes, and fails if either side finds a mismatch:

  mongo_mock.py scripted PROGRAM   receives each command the store sends,
      checks it and scripts the answer, failures included (test_mongo).
  mongo_mock.py database PROGRAM   answers as a MongoDB holding one
      collection would, for the commands the store sends (conformance.c).
      The program may ask for an outage on its stdout: a line "mock: stop"
      stops the server (connections are cut, the port refuses), "mock:
      start" starts it again on the same port with the same documents; the
      answer is a line "done" on its stdin.

The program gets the server's URI as its one argument. Nothing waits long:
every receive and the child process have timeouts."""
import subprocess
import sys
import threading

from bson.int64 import Int64
from mockupdb import MockupDB

HANDSHAKE = {'ismaster': True, 'isWritablePrimary': True, 'helloOk': True, 'maxWireVersion': 13,
             'minWireVersion': 0, 'maxBsonObjectSize': 16777216, 'maxMessageSizeBytes': 48000000,
             'maxWriteBatchSize': 100000, 'ok': 1}


def automatic(request):
    name = (request.command_name or '').lower()
    if name in ('ismaster', 'hello'):
        return request.replies(HANDSHAKE)
    if name in ('ping', 'endsessions'):
        return request.ok()
    return False


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def doc(seq, sub, text, flags=None):
    d = {'_id': {'u': 'u"1', 's': Int64(seq), 'k': Int64(sub)}, 'user': 'u"1', 'seq': Int64(seq),
         'sub': Int64(sub), 'dir': 1 if sub == 0 else 0,
         'message': {'type': 'message', 'text': text, 'n': Int64(12345678901)}}
    if flags is not None:
        d['flags'] = flags
    return d


def documents(request):
    docs = request.docs[1:] if len(request.docs) > 1 else request.doc.get('documents', [])
    return list(docs) or list(request.doc.get('documents', []))


def script(server):
    r = server.receives(timeout=10)
    expect(r.command_name == 'createIndexes', 'first the index: %r' % r.doc)
    index = r.doc['indexes'][0]
    expect(dict(index['key']) == {'user': 1, 'seq': -1, 'sub': -1}, 'index key %r' % index)
    expect(index.get('unique') is True, 'unique index')
    r.ok()

    r = server.receives(timeout=10)
    expect(r.command_name == 'insert' and r.doc['insert'] == 'history', 'an insert: %r' % r.doc)
    docs = documents(r)
    expect(len(docs) == 3, 'one insert carries the whole batch of 3, got %d' % len(docs))
    expect(r.doc.get('ordered') is False, 'unordered')
    expect(r.doc.get('writeConcern', {}).get('w') == 'majority', 'write concern majority: %r' % r.doc)
    first = docs[0]
    expect(first['_id'] == {'u': 'u"1', 's': 1, 'k': 0}, '_id %r' % first['_id'])
    expect(first['user'] == 'u"1' and first['seq'] == 1 and first['sub'] == 0 and first['dir'] == 1, 'fields')
    expect(first['type'] == 'message' and first['text'] == 'hi', 'type and text copied out')
    expect(first['message']['text'] == 'hi', 'the message kept whole')
    expect(docs[1]['type'] == 'message_received' and docs[1]['message']['n'] == 12345678901, 'second document')
    expect('flags' not in first and docs[1].get('flags') == 1, 'flags only where set: %r' % docs)
    expect(first['ts'].year == 2023, 'ts is a date')
    r.ok(n=3)

    r = server.receives(timeout=10)
    expect(r.command_name == 'find', 'a read: %r' % r.doc)
    expect(r.doc['filter']['user'] == 'u"1', 'filter by user')
    expect(dict(r.doc['sort']) == {'seq': -1, 'sub': -1}, 'newest first')
    expect(r.doc['limit'] == 3, 'limit + 1 to know about more')
    r.replies({'cursor': {'id': Int64(0), 'ns': 'anywhere.history',
                          'firstBatch': [doc(2, 0, 'bye', 1), doc(1, 1, 'yo'), doc(1, 0, 'hi')]}, 'ok': 1})

    r = server.receives(timeout=10)
    expect(r.command_name == 'insert', 'insert to fail')
    r.replies({'ok': 0, 'code': 91, 'errmsg': 'the server is shutting down'})
    r = server.receives(timeout=10)
    expect(r.command_name == 'insert' and len(documents(r)) == 1, 'the same batch again')
    r.ok(n=1)
    r = server.receives(timeout=10)
    expect(r.command_name == 'insert', 'duplicates')
    r.replies({'ok': 1, 'n': 0, 'writeErrors': [{'index': 0, 'code': 11000, 'errmsg': 'dup'},
                                               {'index': 1, 'code': 11000, 'errmsg': 'dup'}]})
    r = server.receives(timeout=10)
    expect(r.command_name == 'insert', 'a write error')
    r.replies({'ok': 1, 'n': 1, 'writeErrors': [{'index': 0, 'code': 121, 'errmsg': 'validation failed'}]})

    # a store opened with the option w=1 (main.c's --write-concern 1)
    r = server.receives(timeout=10)
    expect(r.command_name == 'createIndexes', 'the second store: %r' % r.doc)
    r.ok()
    r = server.receives(timeout=10)
    expect(r.command_name == 'insert', 'an insert of the second store: %r' % r.doc)
    expect(r.doc.get('writeConcern', {}).get('w') == 1, 'write concern 1: %r' % r.doc)
    r.ok(n=1)


class Database:
    """What the store asks of MongoDB, answered from memory: createIndexes;
    an unordered insert that refuses a duplicate _id with write error 11000
    and inserts the rest; a find with a filter of equalities, $lt and $or,
    a sort and a limit."""

    def __init__(self):
        self.docs = {}
        self.lock = threading.Lock()
        self.server = None

    def start(self, port=0):
        self.server = MockupDB(port=port)
        self.server.autoresponds(self.answer)
        self.server.run()
        return self.server.uri

    def answer(self, r):
        if automatic(r) is not False:
            return True
        name = (r.command_name or '').lower()
        if name == 'createindexes':
            return r.ok()
        if name == 'insert':
            return self.insert(r)
        if name == 'find':
            return self.find(r)
        return r.replies({'ok': 0, 'code': 59, 'errmsg': 'the mock knows no command %r' % name})

    def insert(self, r):
        errors, n = [], 0
        with self.lock:
            for i, d in enumerate(documents(r)):
                key = tuple(sorted(d['_id'].items()))
                if key in self.docs:
                    errors.append({'index': i, 'code': 11000, 'errmsg': 'E11000 duplicate key'})
                else:
                    self.docs[key] = d
                    n += 1
        return r.replies({'ok': 1, 'n': n, 'writeErrors': errors} if errors else {'ok': 1, 'n': n})

    def find(self, r):
        cmd = r.docs[0]
        with self.lock:
            found = [d for d in self.docs.values() if matches(d, cmd.get('filter', {}))]
        for key, direction in reversed(list(cmd.get('sort', {}).items())):
            found.sort(key=lambda d: d[key], reverse=direction < 0)
        if cmd.get('limit'):
            found = found[:abs(cmd['limit'])]
        return r.replies({'cursor': {'id': Int64(0), 'ns': 'anywhere.history', 'firstBatch': found}, 'ok': 1})


def matches(d, query):
    for key, want in query.items():
        if key == '$or':
            if not any(matches(d, q) for q in want):
                return False
        elif isinstance(want, dict) and list(want) == ['$lt']:
            if key not in d or not d[key] < want['$lt']:
                return False
        elif isinstance(want, dict) and list(want) == ['$bitsAllSet']:
            if int(d.get(key, 0)) & want['$bitsAllSet'] != want['$bitsAllSet']:
                return False
        elif isinstance(want, dict) and any(k.startswith('$') for k in want):
            raise AssertionError('the mock knows no operator in %r' % want)
        elif d.get(key) != want:
            return False
    return True


def run_database(program):
    db = Database()
    uri = db.start()
    port = db.server.port
    child = subprocess.Popen([program, uri + '/anywhere'], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    timer = threading.Timer(60, child.kill)
    timer.start()
    try:
        for line in child.stdout:
            if line == 'mock: stop\n':
                db.server.stop()
            elif line == 'mock: start\n':
                db.start(port)
            else:
                sys.stdout.write(line)
                continue
            child.stdin.write('done\n')
            child.stdin.flush()
        return child.wait()
    finally:
        timer.cancel()
        db.server.stop()


def run_scripted(program):
    server = MockupDB()
    server.autoresponds(automatic)
    server.run()
    child = subprocess.Popen([program, server.uri + '/anywhere?serverSelectionTimeoutMS=3000'])
    try:
        script(server)
        return child.wait(timeout=30)
    except Exception:
        child.kill()
        child.wait()
        raise
    finally:
        server.stop()


def main():
    modes = {'scripted': run_scripted, 'database': run_database}
    if len(sys.argv) != 3 or sys.argv[1] not in modes:
        sys.exit('usage: mongo_mock.py scripted|database PROGRAM')
    code = modes[sys.argv[1]](sys.argv[2])
    if code != 0:
        sys.exit('%s failed with exit code %d' % (sys.argv[2], code))
    print('mongo_mock: ok')


if __name__ == '__main__':
    main()
