//! When a failed delivery is tried again: a pure function of the retry schedule and the attempts made.

use std::time::Duration;

/// The default schedule (SPEC §7): retries 1 min, 5 min, 30 min, 2 h and 24 h after a failure.
pub const DEFAULT_SCHEDULE: [Duration; 5] = [
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(24 * 3600),
];

/// How long after the failed attempt number `attempts_made` (1 for the first) to try again;
/// `None` when the schedule is used up and the delivery is failed.
///
/// A schedule of N waits allows N + 1 attempts in all.
pub fn next_attempt(schedule: &[Duration], attempts_made: u32) -> Option<Duration> {
    let index = usize::try_from(attempts_made.checked_sub(1)?).ok()?;
    schedule.get(index).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_retries_five_times_then_gives_up() {
        let minutes = |m: u64| Some(Duration::from_secs(m * 60));
        assert_eq!(next_attempt(&DEFAULT_SCHEDULE, 1), minutes(1));
        assert_eq!(next_attempt(&DEFAULT_SCHEDULE, 2), minutes(5));
        assert_eq!(next_attempt(&DEFAULT_SCHEDULE, 3), minutes(30));
        assert_eq!(next_attempt(&DEFAULT_SCHEDULE, 4), minutes(120));
        assert_eq!(next_attempt(&DEFAULT_SCHEDULE, 5), minutes(24 * 60));
        assert_eq!(next_attempt(&DEFAULT_SCHEDULE, 6), None);
        assert_eq!(next_attempt(&DEFAULT_SCHEDULE, 7), None);
    }

    #[test]
    fn no_attempt_made_means_nothing_to_retry() {
        assert_eq!(next_attempt(&DEFAULT_SCHEDULE, 0), None);
    }

    #[test]
    fn a_custom_schedule_is_followed_as_given() {
        let schedule = [Duration::from_millis(10), Duration::from_secs(3)];
        assert_eq!(next_attempt(&schedule, 1), Some(Duration::from_millis(10)));
        assert_eq!(next_attempt(&schedule, 2), Some(Duration::from_secs(3)));
        assert_eq!(next_attempt(&schedule, 3), None);
        assert_eq!(next_attempt(&[], 1), None);
    }
}
