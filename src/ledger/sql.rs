//! SQL text helpers shared by the ledger's modules (sqlx takes static SQL only).

/// One of two static SQL texts that differ only in a column name (sqlx takes static SQL):
/// `sql_on!(first, "a" | "b", "… WHERE ", " = ?")` is `"… WHERE a = ?"` when `first`.
macro_rules! sql_on {
    ($first:expr, $a:literal | $b:literal, $before:literal, $after:literal) => {
        if $first {
            concat!($before, $a, $after)
        } else {
            concat!($before, $b, $after)
        }
    };
}
