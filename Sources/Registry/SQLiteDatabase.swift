import CSQLite
import Foundation

/// An SQLite failure with the library's own message.
struct SQLiteError: Error, CustomStringConvertible {
    let code: Int32
    let message: String
    var description: String { "\(message) (SQLite code \(code))" }
}

/// A minimal wrapper over one SQLite connection: prepared statements (kept and reused),
/// binding, stepping and transactions. Not thread-safe by itself; `Registry` serialises access.
final class SQLiteDatabase {
    /// A value bound to a statement parameter or read from a column.
    enum Value: Equatable {
        case integer(Int64)
        case real(Double)
        case text(String)
        case null

        var int: Int { if case .integer(let v) = self { return Int(v) }; return 0 }
        var string: String { if case .text(let v) = self { return v }; return "" }
    }

    private let handle: OpaquePointer
    /// Prepared statements by their SQL text: the registry runs a handful of fixed queries,
    /// the login check among them, so each is compiled once per connection.
    private var statements: [String: OpaquePointer] = [:]

    /// Opens (creating if needed) the database file: WAL journal, so readers never wait
    /// for a writer, and a 5 s busy timeout, so processes sharing the file take turns.
    init(path: String) throws {
        var opened: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        let rc = sqlite3_open_v2(path, &opened, flags, nil)
        guard rc == SQLITE_OK, let opened else {
            let message = opened.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(opened)
            throw SQLiteError(code: rc, message: "cannot open \(path): \(message)")
        }
        handle = opened
        sqlite3_busy_timeout(handle, 5000)
        do {
            try execute("PRAGMA journal_mode = WAL")
            try execute("PRAGMA foreign_keys = ON")
        } catch {
            sqlite3_close(handle)
            throw error
        }
    }

    deinit {
        for statement in statements.values { sqlite3_finalize(statement) }
        sqlite3_close(handle)
    }

    /// Runs one statement with `?` parameters and returns every row, columns by index.
    @discardableResult
    func execute(_ sql: String, _ parameters: [Value] = []) throws -> [[Value]] {
        let statement = try prepare(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (index, parameter) in parameters.enumerated() {
            try check(bind(parameter, to: statement, at: Int32(index + 1)))
        }
        var rows: [[Value]] = []
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { return rows }
            guard rc == SQLITE_ROW else { throw error(rc) }
            rows.append((0..<sqlite3_column_count(statement)).map { column(statement, $0) })
        }
    }

    /// Runs `body` in an immediate (write-locked) transaction: all of it happens, or none.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            _ = try? execute("ROLLBACK")
            throw error
        }
    }

    private func prepare(_ sql: String) throws -> OpaquePointer {
        if let statement = statements[sql] { return statement }
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard rc == SQLITE_OK, let statement else {
            sqlite3_finalize(statement)
            throw error(rc)
        }
        statements[sql] = statement
        return statement
    }

    private func bind(_ value: Value, to statement: OpaquePointer, at position: Int32) -> Int32 {
        switch value {
        case .integer(let v): return sqlite3_bind_int64(statement, position, v)
        case .real(let v): return sqlite3_bind_double(statement, position, v)
        case .null: return sqlite3_bind_null(statement, position)
        case .text(let v):
            // SQLITE_TRANSIENT: SQLite copies the bytes before the call returns.
            return sqlite3_bind_text(statement, position, v, -1, unsafeBitCast(-1, to: sqlite3_destructor_type.self))
        }
    }

    private func column(_ statement: OpaquePointer, _ index: Int32) -> Value {
        switch sqlite3_column_type(statement, index) {
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, index))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(statement, index))
        case SQLITE_NULL: return .null
        default:
            guard let text = sqlite3_column_text(statement, index) else { return .null }
            return .text(String(cString: text))
        }
    }

    private func check(_ rc: Int32) throws {
        guard rc == SQLITE_OK else { throw error(rc) }
    }

    private func error(_ rc: Int32) -> SQLiteError {
        SQLiteError(code: rc, message: String(cString: sqlite3_errmsg(handle)))
    }
}
