module aotc.test/gotests

go 1.19
