// Minimal types for the parts of lz4js (plain JS, no bundled types) that we use.
declare module "lz4js" {
  /** Worst-case compressed size of `n` input bytes. */
  export function compressBound(n: number): number
  /**
   * LZ4 block-compress `src[sIndex, sIndex + sLength)` into `dst` from index 0.
   * Returns the compressed length, or 0 when nothing could be matched (store raw).
   * `hashTable` (65536 entries) must be zeroed before each independent block.
   */
  export function compressBlock(
    src: Uint8Array,
    dst: Uint8Array,
    sIndex: number,
    sLength: number,
    hashTable: Int32Array | Uint32Array
  ): number
  /** Decode an LZ4 block without any bounds checks; returns the end index in `dst`. */
  export function decompressBlock(
    src: Uint8Array,
    dst: Uint8Array,
    sIndex: number,
    sLength: number,
    dIndex: number
  ): number
}
