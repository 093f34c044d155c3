import Foundation

/// A failure to read or write an archive file, with the system's reason.
public struct ArchiveIOError: Error, CustomStringConvertible {
    public let description: String

    init(_ what: String, _ path: String, errno code: Int32 = errno) {
        description = "cannot \(what) \(path): \(String(cString: strerror(code)))"
    }
}

/// Writes all of `bytes` to `fd`, retrying short writes and interruptions.
public func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, name: String) throws {
    var offset = 0
    while offset < bytes.count {
        let count = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if count < 0 {
            if errno == EINTR { continue }
            throw ArchiveIOError("write to", name)
        }
        offset += count
    }
}

/// Writes an archive to `PATH.partial` and renames it to `PATH` only once it is complete,
/// so a failed backup never leaves a partial file under the target name (nor replaces an
/// older complete one). An existing target that is not a regular file (a FIFO, /dev/null)
/// is written directly.
public final class ArchiveFileWriter {
    public let path: String
    private let writingPath: String
    private var fd: Int32

    public init(path: String) throws {
        self.path = path
        var status = stat()
        let special = stat(path, &status) == 0 && (status.st_mode & S_IFMT) != S_IFREG
        writingPath = special ? path : path + ".partial"
        fd = open(writingPath, O_WRONLY | O_CREAT | O_CLOEXEC | (special ? 0 : O_TRUNC), 0o600)
        guard fd >= 0 else { throw ArchiveIOError("create", writingPath) }
    }

    deinit { abandon() }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        try writeAll(fd, bytes, name: writingPath)
    }

    /// Flushes the file to disk and gives it its name.
    public func commit() throws {
        guard fd >= 0 else { return }
        if writingPath != path {
            guard fsync(fd) == 0 else { throw ArchiveIOError("flush", writingPath) }
        }
        let closed = close(fd)
        fd = -1
        guard closed == 0 else { unlink(writingPath); throw ArchiveIOError("close", writingPath) }
        if writingPath != path {
            guard rename(writingPath, path) == 0 else {
                let code = errno
                unlink(writingPath)
                throw ArchiveIOError("rename the finished archive to", path, errno: code)
            }
        }
    }

    /// Closes and removes the partial file (nothing when committed already).
    public func abandon() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
        if writingPath != path { unlink(writingPath) }
    }
}

/// An archive that can be read from its start more than once: a restore checks all of it
/// before it changes anything, then reads it again to write the home.
public protocol ArchiveInput {
    /// A reader from the first byte: it fills the buffer and returns the count, 0 at the end.
    func open() throws -> (UnsafeMutableRawBufferPointer) throws -> Int
}

/// An archive file.
public struct ArchiveFileInput: ArchiveInput {
    public let path: String

    public init(path: String) { self.path = path }

    public func open() throws -> (UnsafeMutableRawBufferPointer) throws -> Int {
        let handle = try FileDescriptor(path: path)
        return { try handle.read(into: $0) }
    }
}

/// Standard input, which can be read only once: the first reading copies it into an
/// unlinked temporary file (in TMPDIR, so disk use is the archive's size), later ones
/// read that copy.
public final class SpooledInput: ArchiveInput {
    private let source: Int32
    private var spool: FileDescriptor?

    public init(fd: Int32 = 0) { source = fd }

    public func open() throws -> (UnsafeMutableRawBufferPointer) throws -> Int {
        if let spool {
            guard lseek(spool.fd, 0, SEEK_SET) == 0 else { throw ArchiveIOError("rewind", "the spooled input") }
            return { try spool.read(into: $0) }
        }
        let directory = FileManager.default.temporaryDirectory.path
        var template = Array((directory as NSString).appendingPathComponent("devenv-gw-restore-XXXXXX").utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw ArchiveIOError("create a spool file in", directory) }
        unlink(String(cString: template))
        let spool = FileDescriptor(fd: fd, name: "the spooled input")
        self.spool = spool
        let input = FileDescriptor(fd: source, name: "standard input", owned: false)
        return { buffer in
            let count = try input.read(into: buffer)
            try writeAll(spool.fd, UnsafeRawBufferPointer(rebasing: buffer[..<count]), name: spool.name)
            return count
        }
    }
}

/// An open file descriptor, closed when released (unless not owned).
final class FileDescriptor {
    let fd: Int32
    let name: String
    private let owned: Bool

    init(fd: Int32, name: String, owned: Bool = true) {
        self.fd = fd
        self.name = name
        self.owned = owned
    }

    convenience init(path: String) throws {
        let fd = Foundation.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ArchiveIOError("open", path) }
        self.init(fd: fd, name: path)
    }

    deinit { if owned { close(fd) } }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let count = Foundation.read(fd, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            if errno != EINTR { throw ArchiveIOError("read", name) }
        }
    }
}
