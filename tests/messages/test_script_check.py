from messages.script_check import script_mismatch


def test_chinese_text_marked_chinese_and_english_marked_english_match():
    assert not script_mismatch("暴雨红色预警：PM2.5 超标，请拨打110。", "zh")
    assert not script_mismatch("Heavy rain in 钦南区 tonight.", "en")
    assert not script_mismatch("", "zh") and not script_mismatch("", "en")


def test_english_text_marked_chinese_and_chinese_marked_english_do_not():
    assert script_mismatch("Heavy rain tonight", "zh")
    assert script_mismatch("今晚有特大暴雨，请远离河道。", "en")
    # A Cantonese notice is written in Han characters too.
    assert script_mismatch("Heavy rain tonight", "yue")
