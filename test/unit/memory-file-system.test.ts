import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryFileSystem } from '../../src/storage/memory-file-system.js';

const bytes = (text: string) => Buffer.from(text);
async function contents(fileSystem: MemoryFileSystem, path: string): Promise<string> {
  const file = await fileSystem.open(path, { create: false });
  const buffer = Buffer.alloc(await file.size());
  await file.read(buffer, 0, buffer.byteLength, 0);
  await file.close();
  return buffer.toString();
}

describe('memory file system (page cache model)', () => {
  it('keeps synced data and drops unsynced writes on a crash', async () => {
    const fileSystem = new MemoryFileSystem();
    await fileSystem.makeDirectory('/d');
    const file = await fileSystem.open('/d/f', { create: true });
    await fileSystem.syncDirectory('/d');
    await file.write([bytes('hello ')], 0);
    await file.datasync();
    await file.write([bytes('world')], 6);
    assert.equal(await contents(fileSystem, '/d/f'), 'hello world', 'writes are visible before they are durable');
    fileSystem.crash();
    assert.equal(await contents(fileSystem, '/d/f'), 'hello ');
    await assert.rejects(file.write([bytes('x')], 0), /EBADF/, 'handles do not survive a crash');
  });

  it('tears the last unsynced write to a prefix', async () => {
    const fileSystem = new MemoryFileSystem();
    await fileSystem.makeDirectory('/d');
    const file = await fileSystem.open('/d/f', { create: true });
    await fileSystem.syncDirectory('/d');
    await file.write([bytes('0123456789')], 0);
    fileSystem.crash({ tearLastWrite: { keepFraction: 0.4 } });
    assert.equal(await contents(fileSystem, '/d/f'), '0123');
  });

  it('undoes overwrites and truncations that were not synced', async () => {
    const fileSystem = new MemoryFileSystem();
    await fileSystem.makeDirectory('/d');
    const file = await fileSystem.open('/d/f', { create: true });
    await fileSystem.syncDirectory('/d');
    await file.write([bytes('abcdef')], 0);
    await file.datasync();
    await file.write([bytes('XY')], 2);
    await file.truncate(3);
    assert.equal(await contents(fileSystem, '/d/f'), 'abX');
    fileSystem.crash();
    assert.equal(await contents(fileSystem, '/d/f'), 'abcdef');
  });

  it('loses files whose directory entry was not synced, and renames that were not synced', async () => {
    const fileSystem = new MemoryFileSystem();
    await fileSystem.makeDirectory('/d');
    const kept = await fileSystem.open('/d/kept', { create: true });
    await kept.write([bytes('k')], 0);
    await kept.datasync();
    await fileSystem.syncDirectory('/d');
    const lost = await fileSystem.open('/d/lost', { create: true });
    await lost.write([bytes('l')], 0);
    await lost.datasync();
    await fileSystem.rename('/d/kept', '/d/renamed');
    fileSystem.crash();
    assert.deepEqual(await fileSystem.list('/d'), ['kept']);
  });

  it('flips a byte on demand, durably', async () => {
    const fileSystem = new MemoryFileSystem();
    await fileSystem.makeDirectory('/d');
    const file = await fileSystem.open('/d/f', { create: true });
    await fileSystem.syncDirectory('/d');
    await file.write([bytes('A')], 0);
    await file.datasync();
    fileSystem.flipByte('/d/f', 0, 0x20);
    fileSystem.crash();
    assert.equal(await contents(fileSystem, '/d/f'), 'a');
  });
});
