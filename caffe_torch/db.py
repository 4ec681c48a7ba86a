"""Caffe's record databases, read the way its Data layer reads them (util/db_lmdb.cpp,
util/db_leveldb.cpp): a cursor walks the records in key order (bytewise, as both stores sort
their keys), is `valid` until it passes the last one, and `seek_to_first` restarts it.

LMDB opens read-only as Caffe's (MDB_RDONLY | MDB_NOTLS). LMDB keeps readers in a lock.mdb
beside data.mdb and creates it on opening; where the folder cannot take one (read-only
media, a folder owned by someone else) the database is opened without locking, as Caffe
built with ALLOW_LMDB_NOLOCK does, which is safe while nobody writes to it.

Each database is opened once per process and shared by the cursors on it, so a TRAIN and a
TEST net may read the same one: LevelDB otherwise refuses a second open from the same
process (its LOCK file), and LMDB must not be opened twice in one process.
"""
import os
import threading

from caffe_torch.errors import DataSourceError

LEVELDB, LMDB = 0, 1
BACKEND_NAMES = {LEVELDB: 'LEVELDB', LMDB: 'LMDB'}

_lock = threading.Lock()
_shared = {}  # (backend, real path) -> [handle, number of users]


def open_db(source, backend, where=''):
    """The database at `source` (a folder) for `backend` (LEVELDB or LMDB), opened for
    reading; `where` (the layer) prefixes errors. Call close() on it when done."""
    prefix = f'{where}: ' if where else ''
    if backend not in BACKEND_NAMES:
        raise DataSourceError(f'{prefix}unknown data_param.backend {backend}; use LEVELDB '
                              f'or LMDB')
    name = BACKEND_NAMES[backend]
    if not source:
        raise DataSourceError(f'{prefix}data_param.source is empty; set it to the folder '
                              f'of the {name} database')
    _check_folder(source, name, prefix)
    key = (backend, os.path.realpath(source))
    with _lock:
        entry = _shared.get(key)
        if entry is None:
            handle = _open_lmdb(source, prefix) if backend == LMDB else \
                _open_leveldb(source, prefix)
            entry = _shared[key] = [handle, 0]
        entry[1] += 1
    return Database(key, entry[0], source, name)


class Database:
    """One user's handle on a shared open database."""

    def __init__(self, key, handle, source, backend_name):
        self._key, self._handle = key, handle
        self.source, self.backend = source, backend_name
        self._cursors = []
        self.closed = False

    def cursor(self):
        """A new cursor at the first record (`valid` is False for an empty database)."""
        cursor = LMDBCursor(self._handle) if self.backend == 'LMDB' else \
            LevelDBCursor(self._handle)
        self._cursors.append(cursor)
        return cursor

    def close(self):
        if self.closed:
            return
        self.closed = True
        for cursor in self._cursors:
            cursor.close()
        with _lock:
            entry = _shared.get(self._key)
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    del _shared[self._key]
                    entry[0].close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may be gone
            pass


class LMDBCursor:
    """Caffe's LMDBCursor: a read transaction held for the cursor's life."""

    def __init__(self, env):
        self._txn = env.begin(buffers=False)
        self._cursor = self._txn.cursor()
        self.valid = self._cursor.first()

    def seek_to_first(self):
        self.valid = self._cursor.first()

    def next(self):
        self.valid = self._cursor.next()

    def key(self):
        return self._cursor.key()

    def value(self):
        return self._cursor.value()

    def close(self):
        if self._cursor is not None:
            self._cursor.close()
            self._txn.abort()
            self._cursor = self._txn = None
            self.valid = False


class LevelDBCursor:
    """Caffe's LevelDBCursor: a LevelDB iterator from the first key."""

    def __init__(self, db):
        self._it = db.raw_iterator()
        self._it.seek_to_first()

    @property
    def valid(self):
        return self._it is not None and self._it.valid()

    def seek_to_first(self):
        self._it.seek_to_first()

    def next(self):
        self._it.next()

    def key(self):
        return self._it.key()

    def value(self):
        return self._it.value()

    def close(self):
        if self._it is not None:
            self._it.close()
            self._it = None


def _check_folder(source, name, prefix):
    if not os.path.exists(source):
        raise DataSourceError(
            f'{prefix}{name} database "{source}" does not exist (relative paths start at '
            f'{os.getcwd()}); check data_param.source')
    if not os.path.isdir(source):
        raise DataSourceError(
            f'{prefix}{name} database "{source}" is a file, not a folder; data_param.source '
            f'names the folder that holds it ({"data.mdb" if name == "LMDB" else "CURRENT"}'
            f' and the rest)')
    is_lmdb = os.path.exists(os.path.join(source, 'data.mdb'))
    is_leveldb = os.path.exists(os.path.join(source, 'CURRENT'))
    if name == 'LEVELDB' and is_lmdb and not is_leveldb:
        raise DataSourceError(
            f'{prefix}"{source}" holds an LMDB database (data.mdb), but the backend is '
            f'LEVELDB (the default); add `backend: LMDB` to data_param')
    if name == 'LMDB' and is_leveldb and not is_lmdb:
        raise DataSourceError(
            f'{prefix}"{source}" holds a LevelDB database (CURRENT), but the backend is '
            f'LMDB; set `backend: LEVELDB` in data_param')
    if not (is_lmdb or is_leveldb):
        raise DataSourceError(
            f'{prefix}"{source}" is not a {name} database (no '
            f'{"data.mdb" if name == "LMDB" else "CURRENT"} in it); point data_param.source '
            f'at the folder convert_imageset or your converter wrote')


def _open_lmdb(source, prefix):
    import lmdb
    try:
        return lmdb.open(source, readonly=True, lock=True, readahead=False)
    except lmdb.Error as first:
        try:  # no lock.mdb can be created here: read without locking (ALLOW_LMDB_NOLOCK)
            return lmdb.open(source, readonly=True, lock=False, readahead=False)
        except lmdb.Error:
            raise DataSourceError(f'{prefix}cannot open LMDB database "{source}": {first}; '
                                  f'check that it is a complete LMDB folder') from None


def _open_leveldb(source, prefix):
    import plyvel
    try:
        return plyvel.DB(source, create_if_missing=False)
    except (plyvel.Error, OSError) as e:
        reason = e.args[0].decode(errors='replace') if e.args and \
            isinstance(e.args[0], bytes) else str(e)
        hint = ('another process holds it open (LevelDB allows one); close it or convert '
                'the database to LMDB') if 'lock' in reason.lower() else \
            'check that it is a complete LevelDB folder'
        raise DataSourceError(f'{prefix}cannot open LevelDB database "{source}": '
                              f'{reason}; {hint}') from None
