"""Runs test_mongo against MongoDB's wire-protocol mock server (mockupdb):
answers the handshake, then receives each command the store sends, checks
it and scripts the answer. Fails if either side finds a mismatch, and never
waits long: every receive and the child process have timeouts."""
import subprocess
import sys

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


def main():
    server = MockupDB()
    server.autoresponds(automatic)
    server.run()
    child = subprocess.Popen([sys.argv[1], server.uri + '/anywhere?serverSelectionTimeoutMS=3000'])
    try:
        script(server)
        code = child.wait(timeout=30)
    except Exception:
        child.kill()
        child.wait()
        raise
    finally:
        server.stop()
    if code != 0:
        sys.exit('test_mongo failed with exit code %d' % code)
    print('mongo_mock: ok')


if __name__ == '__main__':
    main()
