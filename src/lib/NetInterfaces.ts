/**
 * Network interfaces for mDNS: which ones to use (by name, or every one that is up), and
 * whether an address a packet names is one we may dial from the interface it came in on.
 * Pure over a table shaped like `os.networkInterfaces()`, so tests pass their own.
 */
import * as Either from "effect/Either"
import { BlockList, isIPv4, isIPv6 } from "node:net"
import * as os from "node:os"

/** An address of an interface with the length of its subnet prefix. */
export interface InterfaceAddress {
  readonly address: string
  readonly prefix: number
}

/** One network interface that is up, with its addresses by family. */
export interface NetInterface {
  readonly name: string
  /** IPv4 addresses; mDNS runs on the first. Never empty for a chosen interface. */
  readonly ipv4: ReadonlyArray<InterfaceAddress>
  readonly ipv6: ReadonlyArray<InterfaceAddress>
  /** Loopback (lo): only ever used when named. */
  readonly internal: boolean
  /** The subnets of all its addresses. */
  readonly subnets: BlockList
}

/** The shape of `os.networkInterfaces()`. */
export type InterfaceTable = Readonly<Record<string, ReadonlyArray<os.NetworkInterfaceInfo> | undefined>>

const prefixOf = (info: os.NetworkInterfaceInfo): number => {
  const slash = info.cidr?.lastIndexOf("/") ?? -1
  return slash < 0 ? (info.family === "IPv4" ? 32 : 128) : Number(info.cidr!.slice(slash + 1))
}

const toInterface = (name: string, infos: ReadonlyArray<os.NetworkInterfaceInfo>): NetInterface => {
  const subnets = new BlockList()
  const of = (family: "IPv4" | "IPv6") =>
    infos.filter((i) => i.family === family).map((i) => ({ address: i.address, prefix: prefixOf(i) }))
  const ipv4 = of("IPv4")
  const ipv6 = of("IPv6")
  for (const a of ipv4) subnets.addSubnet(a.address, a.prefix, "ipv4")
  for (const a of ipv6) subnets.addSubnet(a.address, a.prefix, "ipv6")
  return { name, ipv4, ipv6, internal: infos.some((i) => i.internal), subnets }
}

/**
 * The interfaces to run mDNS on. `names` empty: every interface that is up (Node lists
 * only those), has an IPv4 address, and is not loopback. Otherwise exactly those named;
 * an unknown one, or one without IPv4, is an error message for the user.
 */
export const chooseInterfaces = (
  names: ReadonlyArray<string>,
  table: InterfaceTable = os.networkInterfaces()
): Either.Either<ReadonlyArray<NetInterface>, string> => {
  const up = Object.entries(table).flatMap(([name, infos]) => (infos && infos.length > 0 ? [toInterface(name, infos)] : []))
  if (names.length === 0) return Either.right(up.filter((i) => !i.internal && i.ipv4.length > 0))
  const chosen: Array<NetInterface> = []
  for (const name of new Set(names)) {
    const found = up.find((i) => i.name === name)
    if (found === undefined) {
      const known = up.map((i) => i.name).join(", ") || "none"
      return Either.left(`unknown network interface "${name}", or it is down (interfaces up: ${known})`)
    }
    if (found.ipv4.length === 0) return Either.left(`network interface "${name}" has no IPv4 address (mDNS runs over IPv4)`)
    chosen.push(found)
  }
  return Either.right(chosen)
}

/** `eth0 (10.0.0.2/24)`, for the start-up log line. */
export const describeInterface = (i: NetInterface): string =>
  `${i.name} (${i.ipv4.map((a) => `${a.address}/${a.prefix}`).join(", ")})`

/** Is `address` (a packet's source) on one of the interface's subnets? */
export const onLink = (i: NetInterface, address: string): boolean =>
  isIPv4(address) ? i.subnets.check(address, "ipv4") : isIPv6(address) && i.subnets.check(address, "ipv6")

const ipv4Number = (address: string): number =>
  address.split(".").reduce((n, part) => n * 256 + Number(part), 0)

/** For an IPv4 address: why a peer there cannot be dialled from `i`, or undefined when it can. */
const ipv4Problem = (i: NetInterface, address: string): string | undefined => {
  const n = ipv4Number(address)
  const first = n >>> 24
  if (first === 0) return "unspecified"
  if (first >= 224) return "multicast or reserved"
  if (first === 127 && !i.internal) return "loopback"
  const subnet = i.ipv4.find((a) => sameIpv4Subnet(a, n))
  if (subnet === undefined) return `not in the subnet of ${i.name}`
  // The subnet's own address and its broadcast address are nobody's.
  const hostBits = 32 - subnet.prefix
  if (hostBits >= 2) {
    const host = n % 2 ** hostBits
    if (host === 0 || host === 2 ** hostBits - 1) return "a subnet or broadcast address"
  }
  return undefined
}

const sameIpv4Subnet = (a: InterfaceAddress, n: number): boolean => {
  const size = 2 ** (32 - a.prefix)
  return Math.floor(ipv4Number(a.address) / size) === Math.floor(n / size)
}

/** For an IPv6 address: link-local (dialled through this interface) or on one of its prefixes. */
const ipv6Problem = (i: NetInterface, address: string): string | undefined => {
  const lower = address.toLowerCase()
  if (lower === "::" || lower === "::1") return "unspecified or loopback"
  if (lower.startsWith("ff")) return "multicast"
  if (lower.includes(".")) return "IPv4-mapped"
  if (/^fe[89ab]/.test(lower)) return undefined
  return i.subnets.check(address, "ipv6") ? undefined : `not on a prefix of ${i.name}`
}

/**
 * Why a peer at `address`, learnt from a packet that came in on `i`, cannot be dialled
 * (unspecified, multicast, loopback from outside, off the interface's subnets), or
 * undefined when it can.
 */
export const addressProblem = (i: NetInterface, address: string): string | undefined =>
  isIPv4(address) ? ipv4Problem(i, address) : isIPv6(address) ? ipv6Problem(i, address) : "not an IP address"

/** The host to dial for a usable address: link-local IPv6 gets the interface as its zone. */
export const dialHost = (i: NetInterface, address: string): string =>
  isIPv6(address) && /^fe[89ab]/i.test(address) ? `${address}%${i.name}` : address
