import CSQLite
import Foundation

/// An SQLite failure with the library's own message.
public struct SQLiteError: Error, CustomStringConvertible {
    public let code: Int32
    public let message: String
    public var description: String { "registry database error \(code): \(message)" }
}

/// A minimal typed wrapper over one SQLite connection: prepared statements, binding,
/// stepping and transactions. Not thread-safe by itself; `Registry` serialises access.
final class SQLiteDatabase {
    private var handle: OpaquePointer?

    init(path: String) throws {
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        guard sqlite3_open_v2(path, &handle, flags, nil) == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(handle)
            throw SQLiteError(code: SQLITE_CANTOPEN, message: "\(path): \(message)")
        }
        // Several processes (serve and admin commands) share the file.
        sqlite3_busy_timeout(handle, 5000)
        try execute("PRAGMA journal_mode = WAL")
        try execute("PRAGMA foreign_keys = ON")
    }

    deinit { sqlite3_close(handle) }

    /// A value bound to a statement parameter or read from a column.
    enum Value: Equatable {
        case integer(Int64)
        case text(String)
        case real(Double)
        case null
    }

    /// Runs a statement and returns every row as columns by index.
    @discardableResult
    func execute(_ sql: String, _ parameters: [Value] = []) throws -> [[Value]] {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK else { throw lastError() }
        defer { sqlite3_finalize(statement) }
        for (index, parameter) in parameters.enumerated() {
            let position = Int32(index + 1)
            let rc: Int32
            switch parameter {
            case .integer(let value): rc = sqlite3_bind_int64(statement, position, value)
            case .real(let value): rc = sqlite3_bind_double(statement, position, value)
            case .null: rc = sqlite3_bind_null(statement, position)
            case .text(let value):
                // SQLITE_TRANSIENT: SQLite copies the bytes before this call returns.
                rc = sqlite3_bind_text(statement, position, value, -1, unsafeBitCast(-1, to: sqlite3_destructor_type.self))
            }
            guard rc == SQLITE_OK else { throw lastError() }
        }
        var rows: [[Value]] = []
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw lastError() }
            rows.append((0..<sqlite3_column_count(statement)).map { column in
                switch sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, column))
                case SQLITE_FLOAT: return .real(sqlite3_column_double(statement, column))
                case SQLITE_NULL: return .null
                default: return .text(String(cString: sqlite3_column_text(statement, column)))
                }
            })
        }
        return rows
    }

    /// Runs `body` in an immediate transaction: all of it happens, or none of it.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    private func lastError() -> SQLiteError {
        SQLiteError(code: sqlite3_errcode(handle), message: String(cString: sqlite3_errmsg(handle)))
    }
}

extension SQLiteDatabase.Value {
    var int: Int { if case .integer(let v) = self { return Int(v) }; return 0 }
    var string: String { if case .text(let v) = self { return v }; return "" }
    var double: Double {
        switch self {
        case .real(let v): return v
        case .integer(let v): return Double(v)
        default: return 0
        }
    }
}
