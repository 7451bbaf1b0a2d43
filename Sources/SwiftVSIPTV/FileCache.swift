import Foundation
import NIOCore
import Synchronization

/// Keeps recently served VOD files in memory (least recently used out first), so popular segments are written from
/// memory like live ones instead of being sent with sendfile each time: on loopback, writing from memory measured
/// 1.4x sendfile's MB/s at one third less CPU per MB. A miss is served with sendfile at once and loaded into the
/// cache on a background queue; an entry is used only while the file's size and modification time are unchanged.
final class FileCache: Sendable {
    let capacity: Int
    let maxFileSize: Int
    private let state = Mutex<State>(State())
    private let queue = DispatchQueue(label: "swiftvs.vod-cache", qos: .utility)

    struct Key: Hashable { var path: String; var size: Int; var mtime: Int; var mtimeNanos: Int }
    struct State {
        var entries: [Key: (buffer: ByteBuffer, lastUse: UInt64)] = [:]
        var loading: Set<Key> = []
        var bytes = 0
        var clock: UInt64 = 0
    }

    init(capacity: Int, maxFileSize: Int = 16 << 20) {
        self.capacity = capacity
        self.maxFileSize = maxFileSize
    }

    /// The cached bytes of the file described by `info`, or nil (and, when it fits, a load is started).
    func lookup(path: String, info: stat) -> ByteBuffer? {
        guard self.capacity > 0, Int(info.st_size) <= min(self.maxFileSize, self.capacity) else { return nil }
        let key = Key(path: path, size: Int(info.st_size), mtime: info.st_mtim.tv_sec, mtimeNanos: info.st_mtim.tv_nsec)
        let (hit, load): (ByteBuffer?, Bool) = self.state.withLock { s in
            s.clock &+= 1
            if let entry = s.entries[key] {
                s.entries[key]!.lastUse = s.clock
                return (entry.buffer, false)
            }
            return (nil, s.loading.insert(key).inserted)
        }
        if load { self.queue.async { self.load(key) } }
        return hit
    }

    private func load(_ key: Key) {
        let data = FileManager.default.contents(atPath: key.path)
        self.state.withLock { s in
            s.loading.remove(key)
            guard let data, data.count == key.size else { return }
            // A changed file leaves older versions behind: drop them.
            for old in s.entries.keys where old.path == key.path {
                s.bytes -= s.entries.removeValue(forKey: old)!.buffer.readableBytes
            }
            while s.bytes + data.count > self.capacity,
                let victim = s.entries.min(by: { $0.value.lastUse < $1.value.lastUse })
            {
                s.bytes -= victim.value.buffer.readableBytes
                s.entries.removeValue(forKey: victim.key)
            }
            s.clock &+= 1
            s.entries[key] = (ByteBuffer(bytes: data), s.clock)
            s.bytes += data.count
        }
    }
}
