#!/usr/bin/env bash
# Renders the kiosk's spoken prompts with espeak-ng (Mandarin voice "cmn", English "en") and
# encodes them as small Ogg/Opus files. The results are committed; run this again only after
# changing a text here (needs: apt-get install espeak-ng opus-tools).
#
# Prompts are short and slow on purpose: many residents are elderly.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

render() { # name lang voice text
    espeak-ng -v "$3" -s 130 -a 180 -w "$tmp/$1.$2.wav" "$4"
    opusenc --quiet --bitrate 20 --downmix-mono "$tmp/$1.$2.wav" "$1.$2.ogg"
}

render welcome     zh cmn "您好，欢迎使用远程办事。请点击取号办事。"
render welcome     en en  "Welcome. Please tap Take a number."
render taken       zh cmn "取号成功，请在屏幕前稍候。"
render taken       en en  "You have a number. Please wait here."
render called      zh cmn "轮到您了，工作人员正在为您连接。"
render called      en en  "It is your turn. Connecting you to the clerk."
render evaluate    zh cmn "请为本次服务评价。"
render evaluate    en en  "Please rate this service."
render thanks      zh cmn "谢谢您的评价，再见。"
render thanks      en en  "Thank you. Goodbye."
render closed      zh cmn "现在不在服务时间，请在服务时间再来。"
render closed      en en  "We are closed now. Please come back during service hours."
render offline     zh cmn "暂时连不上受理中心，请稍后再试。"
render offline     en en  "We cannot reach the centre right now. Please try again later."
render still-there zh cmn "您还在等候吗？请点击继续等候。"
render still-there en en  "Are you still waiting? Please tap to keep your place."
