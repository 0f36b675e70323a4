// The history's storage backend in a browser: one IndexedDB database per origin. The
// private keys are kept here too (as bytes), and nowhere else: never in localStorage,
// never sent anywhere.

// Version 2 adds `held`: messages kept as ciphertext until their sender's new keys are trusted.
const VERSION = 2;
export const TABLES = ['identity', 'messages', 'rejected', 'held', 'peers', 'meta'];

function request(idbRequest) {
  return new Promise((resolve, reject) => {
    idbRequest.onsuccess = () => resolve(idbRequest.result);
    idbRequest.onerror = () => reject(idbRequest.error);
  });
}

export class IndexedDbBackend {
  constructor(database) {
    this.database = database;
  }

  static async open(name = 'messenger') {
    const opening = globalThis.indexedDB.open(name, VERSION);
    opening.onupgradeneeded = () => {
      for (const table of TABLES) {
        if (!opening.result.objectStoreNames.contains(table)) opening.result.createObjectStore(table);
      }
    };
    return new IndexedDbBackend(await request(opening));
  }

  #store(table, mode) {
    return this.database.transaction(table, mode).objectStore(table);
  }

  get(table, key) {
    return request(this.#store(table, 'readonly').get(key));
  }

  async put(table, key, value) {
    const transaction = this.database.transaction(table, 'readwrite');
    transaction.objectStore(table).put(value, key);
    // Resolved once the write is committed: what the client acks is on disk.
    await new Promise((resolve, reject) => {
      transaction.oncomplete = resolve;
      transaction.onerror = () => reject(transaction.error);
      transaction.onabort = () => reject(transaction.error);
    });
  }

  delete(table, key) {
    return request(this.#store(table, 'readwrite').delete(key));
  }

  all(table) {
    return request(this.#store(table, 'readonly').getAll());
  }

  close() {
    this.database.close();
  }
}
