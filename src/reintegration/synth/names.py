"""Name, street and code pools for the synthetic persons.

Names are drawn by migration background so that records look like a Dutch
city's client file, including letters outside ASCII (and outside Windows
code page 1252, which some exports cannot store).
"""

from __future__ import annotations

FIRST_NAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "nl": {
        "male": ("Jan", "Pieter", "Kees", "Dennis", "Sander", "Bram", "Noël", "Joël", "Daan",
                 "Ruud", "Mark", "Henk", "Jeroen", "Stijn", "Thijs"),
        "female": ("Anna", "Sanne", "Linda", "Marieke", "Zoë", "Chloë", "Ingrid", "Anaïs",
                   "Esther", "Femke", "Renée", "Petra", "Iris", "Noëlle", "Lotte"),
    },
    "ma": {
        "male": ("Mohamed", "Youssef", "Ayoub", "Said", "Hamza", "Bilal", "Mustafa", "Karim"),
        "female": ("Fatima", "Khadija", "Naima", "Samira", "Soumaya", "Nadia", "Hafsa", "Loubna"),
    },
    "tr": {
        "male": ("Mehmet", "Ahmet", "Şükrü", "Hüseyin", "Emre", "İbrahim", "Özkan", "Murat"),
        "female": ("Ayşe", "Gülşen", "Özlem", "Elif", "Hülya", "Büşra", "Fatma", "Zeynep"),
    },
    "sr": {
        "male": ("Rishi", "Ravi", "Orlando", "Clyde", "Dinesh", "Ramon", "Sunil", "Errol"),
        "female": ("Shanti", "Priya", "Jolanda", "Ingrid", "Sharmila", "Rachelle", "Indra"),
    },
    "an": {
        "male": ("Jurgen", "Ruthmilo", "Shurandy", "Giovanni", "Quincy", "Rigo"),
        "female": ("Shudaïsha", "Jeanine", "Mireille", "Rosemarie", "Naïra", "Gisèle"),
    },
    "other_nonwestern": {
        "male": ("Ahmad", "Abdi", "Tesfay", "Omar", "Farid", "Nguyễn Văn", "Hassan", "Daniel"),
        "female": ("Amina", "Hiba", "Semhar", "Leyla", "Maryam", "Thị Lan", "Asha", "Rahel"),
    },
    "western": {
        "male": ("Łukasz", "Paweł", "Jürgen", "José", "François", "Björn", "Tomáš", "Luca"),
        "female": ("Małgorzata", "Agnieszka", "Sophie", "Inês", "Françoise", "Åsa", "Jana",
                   "Giulia"),
    },
}

SURNAMES: dict[str, tuple[tuple[str, str], ...]] = {
    # (surname prefix, surname)
    "nl": (("de", "Vries"), ("", "Jansen"), ("van", "Dijk"), ("", "Bakker"), ("", "Visser"),
           ("van der", "Meer"), ("", "Smit"), ("de", "Boer"), ("van den", "Berg"), ("", "Mulder"),
           ("", "Kroeze"), ("", "Hoogendoorn"), ("van 't", "Hek"), ("", "Hoëvenaars"),
           ("", "Van Gaal"), ("ten", "Brinke")),
    "ma": (("", "El Amrani"), ("", "Boukhari"), ("", "Benali"), ("", "Ouahbi"), ("", "Azzouzi"),
           ("", "El Idrissi"), ("", "Haddouchi"), ("", "Aït Taleb")),
    "tr": (("", "Yılmaz"), ("", "Öztürk"), ("", "Çelik"), ("", "Şahin"), ("", "Doğan"),
           ("", "Kaya"), ("", "Demir"), ("", "Aydın")),
    "sr": (("", "Ramdin"), ("", "Sewnath"), ("", "Jagessar"), ("", "Tjon A Fong"),
           ("", "Biharie"), ("", "Kromodimedjo"), ("", "Pinas")),
    "an": (("", "Martina"), ("", "Isenia"), ("", "Zimmerman"), ("", "Trinidad"), ("", "Römer"),
           ("", "Maduro")),
    "other_nonwestern": (("", "Haile"), ("", "Mohamud"), ("", "Al-Khatib"), ("", "Nguyễn"),
                         ("", "Rahimi"), ("", "Tesfamariam"), ("", "Hussaini")),
    "western": (("", "Kowalski"), ("", "Wiśniewski"), ("", "Müller"), ("", "Pérez"),
                ("", "Núñez"), ("", "Dubois"), ("", "Novák"), ("", "Lindström")),
}

STREETS: tuple[str, ...] = (
    "Kruiskade", "Coolsingel", "Zuidplein", "Hoofdweg", "Dorpsstraat", "Kerkstraat",
    "Curaçaostraat", "Bégoniastraat", "Réaumurstraat", "Händelstraat", "Dürerstraat",
    "Van 't Hoffstraat", "Prinses Beatrixlaan", "Molenweg", "Sint-Jorisstraat", "Marnixstraat",
    "Ruysdaelkade", "Statenweg", "Goudsesingel", "Schiedamseweg", "Vrijheidslaan", "Zaanstraat",
    "Mozartlaan", "Piet Heinkade", "Ærøstraat", "Stationsweg", "Lange Nieuwstraat",
    "Burgemeester de Vlugtlaan", "Noordsingel", "Beukelsdijk",
)

#: letters used in the two-letter part of a postcode (F, I, O, Q, U, Y are avoided)
POSTCODE_LETTERS = "ABCDEGHJKLMNPRSTVWXZ"

#: migration category -> (birth countries for first generation: code, name)
COUNTRIES: dict[str, tuple[tuple[str, str], ...]] = {
    "nl": (("6030", "Nederland"),),
    "ma": (("5022", "Marokko"),),
    "tr": (("6043", "Turkije"),),
    "sr": (("5007", "Suriname"),),
    "an": (("5107", "Curaçao"), ("5095", "Aruba")),
    "other_nonwestern": (("5016", "Syrië"), ("5028", "Somalië"), ("5034", "Eritrea"),
                         ("5040", "Afghanistan")),
    "western": (("6020", "Polen"), ("6029", "Duitsland"), ("6039", "Bulgarije"),
                ("6037", "Spanje")),
}
NETHERLANDS = "6030"

#: education level -> illustrative OPLNIVSOI2016AGG4HBMETNIRWO codes
EDUCATION_CODES: dict[str, tuple[str, ...]] = {
    "low": ("1111", "1211", "1212"),
    "middle": ("2111", "2112", "2121"),
    "high": ("3111", "3211"),
}

CHRONIC_ATC4 = ("A10B", "C07A", "C09A", "C10A", "N05A", "N06A", "R03A")
ACUTE_ATC4 = ("J01C", "M01A", "N02B", "A02B", "D07A", "R05D")
