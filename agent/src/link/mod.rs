pub mod rtc;
