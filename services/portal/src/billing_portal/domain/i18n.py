"""The pages' words in English, German and French, and money and dates written for each.

Amounts are formatted by Babel for the page's language in the invoice's currency (its own
number of decimals: 1.234,56 EUR in German, 1 234,56 EUR in French, JPY without decimals).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from babel.dates import format_date
from babel.numbers import format_currency, format_decimal

from billing_portal.domain.users import LANGUAGES

DEFAULT = "en"

MESSAGES: dict[str, dict[str, str]] = {
    "app": {"en": "Billing portal", "de": "Abrechnungsportal", "fr": "Portail de facturation"},
    "nav": {"en": "Main navigation", "de": "Hauptnavigation", "fr": "Navigation principale"},
    "skip": {"en": "Skip to content", "de": "Zum Inhalt", "fr": "Aller au contenu"},
    "invoices": {"en": "Invoices", "de": "Rechnungen", "fr": "Factures"},
    "usage": {"en": "This month so far", "de": "Dieser Monat bisher", "fr": "Ce mois-ci"},
    "account": {"en": "Account settings", "de": "Kontoeinstellungen", "fr": "Paramètres du compte"},
    "sign_in": {"en": "Sign in", "de": "Anmelden", "fr": "Se connecter"},
    "sign_out": {"en": "Sign out", "de": "Abmelden", "fr": "Se déconnecter"},
    "email": {"en": "Email address", "de": "E-Mail-Adresse", "fr": "Adresse e-mail"},
    "password": {"en": "Password", "de": "Passwort", "fr": "Mot de passe"},
    "new_password": {"en": "New password", "de": "Neues Passwort", "fr": "Nouveau mot de passe"},
    "set_password": {
        "en": "Set your password",
        "de": "Passwort festlegen",
        "fr": "Définir votre mot de passe",
    },
    "password_rule": {
        "en": "At least 12 characters.",
        "de": "Mindestens 12 Zeichen.",
        "fr": "Au moins 12 caractères.",
    },
    "password_set": {
        "en": "Your password is set. Sign in with it.",
        "de": "Ihr Passwort ist festgelegt. Melden Sie sich damit an.",
        "fr": "Votre mot de passe est défini. Connectez-vous.",
    },
    "bad_link": {
        "en": "This link is not valid (any more). Ask your operator for a new one.",
        "de": "Dieser Link ist nicht (mehr) gültig. Bitten Sie um einen neuen.",
        "fr": "Ce lien n'est pas (plus) valide. Demandez-en un nouveau.",
    },
    "bad_sign_in": {
        "en": "Wrong email address or password.",
        "de": "E-Mail-Adresse oder Passwort falsch.",
        "fr": "Adresse e-mail ou mot de passe incorrect.",
    },
    "slow_down": {
        "en": "Too many failed sign-ins. Try again in {seconds} seconds.",
        "de": "Zu viele fehlgeschlagene Anmeldungen. Erneut in {seconds} Sekunden.",
        "fr": "Trop d'échecs de connexion. Réessayez dans {seconds} secondes.",
    },
    "type": {"en": "Type", "de": "Art", "fr": "Type"},
    "invoice": {"en": "Invoice", "de": "Rechnung", "fr": "Facture"},
    "credit_note_type": {"en": "Credit note", "de": "Gutschrift", "fr": "Avoir"},
    "on_invoice": {"en": "on {number}", "de": "zu {number}", "fr": "sur {number}"},
    "invoice_no": {"en": "Invoice No", "de": "Rechnungsnr.", "fr": "N° de facture"},
    "outstanding": {"en": "Outstanding Amount", "de": "Offener Betrag", "fr": "Montant dû"},
    "invoice_date": {"en": "Invoice Date", "de": "Rechnungsdatum", "fr": "Date de facture"},
    "due_date": {"en": "Due Date", "de": "Fälligkeitsdatum", "fr": "Date d'échéance"},
    "actions": {"en": "Actions", "de": "Aktionen", "fr": "Actions"},
    "select": {"en": "Select", "de": "Auswählen", "fr": "Sélectionner"},
    "select_invoice": {
        "en": "Select invoice {number}",
        "de": "Rechnung {number} auswählen",
        "fr": "Sélectionner la facture {number}",
    },
    "menu_for": {
        "en": "Actions for invoice {number}",
        "de": "Aktionen für Rechnung {number}",
        "fr": "Actions pour la facture {number}",
    },
    "paid": {"en": "Paid", "de": "Bezahlt", "fr": "Payée"},
    "overdue": {"en": "Overdue", "de": "Überfällig", "fr": "En retard"},
    "void": {"en": "Void", "de": "Storniert", "fr": "Annulée"},
    "view_pdf": {"en": "View PDF", "de": "PDF ansehen", "fr": "Voir le PDF"},
    "download_pdf": {"en": "Download PDF", "de": "PDF herunterladen", "fr": "Télécharger le PDF"},
    "download_csv": {
        "en": "Download usage CSV",
        "de": "Nutzungs-CSV herunterladen",
        "fr": "Télécharger le CSV d'usage",
    },
    "download_detail_csv": {
        "en": "Download detailed CSV",
        "de": "Detail-CSV herunterladen",
        "fr": "Télécharger le CSV détaillé",
    },
    "pay": {"en": "Pay this invoice", "de": "Diese Rechnung bezahlen", "fr": "Payer cette facture"},
    "download_selected": {
        "en": "Download selected PDFs (ZIP)",
        "de": "Ausgewählte PDFs herunterladen (ZIP)",
        "fr": "Télécharger les PDF choisis (ZIP)",
    },
    "none_selected": {
        "en": "Select at least one invoice.",
        "de": "Wählen Sie mindestens eine Rechnung.",
        "fr": "Choisissez au moins une facture.",
    },
    "no_invoices": {
        "en": "No invoices yet.",
        "de": "Noch keine Rechnungen.",
        "fr": "Pas encore de factures.",
    },
    "previous": {"en": "Previous page", "de": "Vorherige Seite", "fr": "Page précédente"},
    "next": {"en": "Next page", "de": "Nächste Seite", "fr": "Page suivante"},
    "page": {"en": "Page {n}", "de": "Seite {n}", "fr": "Page {n}"},
    "dues": {"en": "Dues", "de": "Forderung", "fr": "Montants dus"},
    "net": {"en": "Net", "de": "Netto", "fr": "Montant HT"},
    "total": {"en": "Total", "de": "Gesamt", "fr": "Total"},
    "already_paid": {"en": "Already paid", "de": "Bereits bezahlt", "fr": "Déjà payé"},
    "credited": {"en": "Credited", "de": "Gutgeschrieben", "fr": "Crédité"},
    "outstanding_short": {"en": "Outstanding", "de": "Offen", "fr": "Reste dû"},
    "how_to_pay": {"en": "How to pay", "de": "Zahlungswege", "fr": "Moyens de paiement"},
    "reference": {
        "en": "Reference to quote",
        "de": "Anzugebende Referenz",
        "fr": "Référence à indiquer",
    },
    "close": {"en": "Close", "de": "Schließen", "fr": "Fermer"},
    "not_final": {
        "en": "Not final: usage so far this month, before tax. The invoice may differ.",
        "de": "Nicht endgültig: bisherige Nutzung dieses Monats, ohne Steuer.",
        "fr": "Non définitif : usage du mois jusqu'ici, hors taxes.",
    },
    "no_usage": {
        "en": "No usage recorded yet this month.",
        "de": "In diesem Monat noch keine Nutzung.",
        "fr": "Aucun usage enregistré ce mois-ci.",
    },
    "service": {"en": "Service", "de": "Dienst", "fr": "Service"},
    "provider": {"en": "Provider", "de": "Anbieter", "fr": "Fournisseur"},
    "period": {"en": "Period", "de": "Zeitraum", "fr": "Période"},
    "amount": {"en": "Amount", "de": "Betrag", "fr": "Montant"},
    "so_far": {"en": "Total so far", "de": "Summe bisher", "fr": "Total à ce jour"},
    "customer_info": {"en": "Customer Info", "de": "Kundendaten", "fr": "Infos client"},
    "contact": {"en": "Contact", "de": "Kontakt", "fr": "Contact"},
    "settings": {"en": "Settings", "de": "Einstellungen", "fr": "Paramètres"},
    "current_user": {"en": "Current user", "de": "Aktueller Benutzer", "fr": "Utilisateur"},
    "name": {"en": "Name", "de": "Name", "fr": "Nom"},
    "address": {"en": "Address", "de": "Adresse", "fr": "Adresse"},
    "vat_id": {"en": "VAT ID", "de": "USt-IdNr.", "fr": "N° TVA"},
    "currency": {"en": "Invoicing currency", "de": "Rechnungswährung", "fr": "Devise"},
    "terms": {"en": "Payment terms", "de": "Zahlungsziel", "fr": "Délai de paiement"},
    "days": {"en": "{n} days", "de": "{n} Tage", "fr": "{n} jours"},
    "edit": {"en": "Save roles", "de": "Rollen speichern", "fr": "Enregistrer les rôles"},
    "delete": {"en": "Delete", "de": "Löschen", "fr": "Supprimer"},
    "roles_of": {
        "en": "Roles of {email}",
        "de": "Rollen von {email}",
        "fr": "Rôles de {email}",
    },
    "create_email": {
        "en": "Create new Email",
        "de": "Neue E-Mail anlegen",
        "fr": "Créer un nouvel e-mail",
    },
    "contact_rule": {
        "en": "Invoices go to the addresses with the Billing role, from the next email on. "
        "To move the role, add the new address with Billing first, then take it from the old "
        "one: a customer always keeps at least one Billing contact.",
        "de": "Rechnungen gehen an die Adressen mit der Rolle Billing, ab der nächsten E-Mail. "
        "Zum Umziehen zuerst die neue Adresse mit Billing anlegen, dann der alten die Rolle "
        "nehmen: mindestens ein Billing-Kontakt bleibt immer.",
        "fr": "Les factures vont aux adresses ayant le rôle Billing, dès le prochain e-mail. "
        "Pour déplacer le rôle, ajoutez d'abord la nouvelle adresse avec Billing, puis retirez-le "
        "de l'ancienne : il reste toujours au moins un contact Billing.",
    },
    "language": {
        "en": "Invoice and email language",
        "de": "Sprache von Rechnungen und E-Mails",
        "fr": "Langue des factures et e-mails",
    },
    "page_language": {"en": "Page language", "de": "Seitensprache", "fr": "Langue des pages"},
    "save": {"en": "Save", "de": "Speichern", "fr": "Enregistrer"},
    "saved": {"en": "Saved.", "de": "Gespeichert.", "fr": "Enregistré."},
    "from_next": {
        "en": "Applies from the next invoice and email on.",
        "de": "Gilt ab der nächsten Rechnung und E-Mail.",
        "fr": "S'applique dès la prochaine facture et le prochain e-mail.",
    },
    "not_found": {
        "en": "Not found.",
        "de": "Nicht gefunden.",
        "fr": "Introuvable.",
    },
    "console": {"en": "Operator console", "de": "Betreiberkonsole", "fr": "Console opérateur"},
    "report": {"en": "Billing report", "de": "Abrechnungsbericht", "fr": "Rapport de facturation"},
    "generate": {
        "en": "Generate Invoices",
        "de": "Rechnungen erzeugen",
        "fr": "Générer les factures",
    },
    "customer_invoices": {
        "en": "Customer invoices",
        "de": "Kundenrechnungen",
        "fr": "Factures clients",
    },
    "customer": {"en": "Customer", "de": "Kunde", "fr": "Client"},
    "cost": {"en": "Cost", "de": "Kosten", "fr": "Coût"},
    "price": {"en": "Price", "de": "Preis", "fr": "Prix"},
    "margin": {"en": "Margin", "de": "Marge", "fr": "Marge"},
    "show": {"en": "Show", "de": "Anzeigen", "fr": "Afficher"},
    "bills_loaded": {
        "en": "Bills loaded",
        "de": "Geladene Rechnungsdateien",
        "fr": "Factures fournisseurs chargées",
    },
    "rows_read": {"en": "Rows read", "de": "Zeilen gelesen", "fr": "Lignes lues"},
    "rows_accepted": {"en": "Rows accepted", "de": "Zeilen übernommen", "fr": "Lignes acceptées"},
    "rows_rejected": {"en": "Rows rejected", "de": "Zeilen abgelehnt", "fr": "Lignes rejetées"},
    "file": {"en": "File", "de": "Datei", "fr": "Fichier"},
    "format": {"en": "Format", "de": "Format", "fr": "Format"},
    "preview": {"en": "Preview", "de": "Vorschau", "fr": "Aperçu"},
    "would_issue": {
        "en": "What would be issued",
        "de": "Was ausgestellt würde",
        "fr": "Ce qui serait émis",
    },
    "action": {"en": "Action", "de": "Aktion", "fr": "Action"},
    "cannot_undo": {
        "en": "Generating numbers the invoices and emails them. It cannot be undone: only credit "
        "notes correct an issued invoice.",
        "de": "Das Erzeugen nummeriert und versendet die Rechnungen. Es kann nicht rückgängig "
        "gemacht werden: nur Gutschriften korrigieren eine Rechnung.",
        "fr": "La génération numérote et envoie les factures. Elle est irréversible : seuls "
        "des avoirs corrigent une facture émise.",
    },
    "confirm_generate": {
        "en": "Yes, generate the invoices",
        "de": "Ja, Rechnungen erzeugen",
        "fr": "Oui, générer les factures",
    },
    "generating": {
        "en": "Closing asked for these invoices; each is numbered and emailed as the invoicing "
        "service reaches it.",
        "de": "Abschluss angefordert; jede Rechnung wird nummeriert und versendet, sobald der "
        "Dienst sie erreicht.",
        "fr": "Clôture demandée ; chaque facture est numérotée et envoyée dès que le service "
        "l'atteint.",
    },
    "nothing_to_issue": {
        "en": "Nothing to issue for this period.",
        "de": "Für diesen Zeitraum nichts auszustellen.",
        "fr": "Rien à émettre pour cette période.",
    },
    "status": {"en": "Status", "de": "Status", "fr": "Statut"},
    "any": {"en": "Any", "de": "Alle", "fr": "Tous"},
    "discount": {
        "en": "Discounts, netting or credits",
        "de": "Rabatte, Verrechnung oder Gutschriften",
        "fr": "Remises, compensation ou avoirs",
    },
    "with": {"en": "With", "de": "Mit", "fr": "Avec"},
    "without": {"en": "Without", "de": "Ohne", "fr": "Sans"},
    "min_total": {"en": "Total from", "de": "Summe ab", "fr": "Total de"},
    "max_total": {"en": "Total up to", "de": "Summe bis", "fr": "Total jusqu'à"},
    "filter": {"en": "Filter", "de": "Filtern", "fr": "Filtrer"},
    "view": {"en": "View", "de": "Ansehen", "fr": "Voir"},
    "lines": {"en": "Lines", "de": "Positionen", "fr": "Lignes"},
    "netting": {
        "en": "Included infrastructure netting",
        "de": "Verrechnung inklusiver Infrastruktur",
        "fr": "Compensation de l'infrastructure incluse",
    },
    "taxes": {"en": "Taxes", "de": "Steuern", "fr": "Taxes"},
    "record_payment": {
        "en": "Record a payment",
        "de": "Zahlung erfassen",
        "fr": "Enregistrer un paiement",
    },
    "method": {"en": "Method", "de": "Zahlungsart", "fr": "Moyen"},
    "bank_reference": {"en": "Bank reference", "de": "Bankreferenz", "fr": "Référence bancaire"},
    "credit_note": {
        "en": "Issue a credit note",
        "de": "Gutschrift ausstellen",
        "fr": "Émettre un avoir",
    },
    "void_invoice": {
        "en": "Void the invoice",
        "de": "Rechnung stornieren",
        "fr": "Annuler la facture",
    },
    "reason": {"en": "Reason", "de": "Grund", "fr": "Motif"},
    "confirm": {"en": "Confirm", "de": "Bestätigen", "fr": "Confirmer"},
    "cancel": {"en": "Cancel", "de": "Abbrechen", "fr": "Annuler"},
    "confirm_payment": {
        "en": "Record a payment of {amount} ({method}, {reference}) on {number}?",
        "de": "Zahlung von {amount} ({method}, {reference}) auf {number} erfassen?",
        "fr": "Enregistrer un paiement de {amount} ({method}, {reference}) sur {number} ?",
    },
    "confirm_credit": {
        "en": "Issue a credit note of {amount} on {number}? It cannot be undone.",
        "de": "Gutschrift über {amount} zu {number} ausstellen? Nicht rückgängig zu machen.",
        "fr": "Émettre un avoir de {amount} sur {number} ? C'est irréversible.",
    },
    "confirm_void": {
        "en": "Void {number}, crediting everything not credited yet? It cannot be undone.",
        "de": "{number} stornieren und alles noch nicht Gutgeschriebene gutschreiben? Nicht "
        "rückgängig zu machen.",
        "fr": "Annuler {number} en créditant tout ce qui ne l'est pas encore ? C'est irréversible.",
    },
    "done": {"en": "Done.", "de": "Erledigt.", "fr": "Fait."},
    "draft": {"en": "Draft", "de": "Entwurf", "fr": "Brouillon"},
    "payments": {"en": "Payments", "de": "Zahlungen", "fr": "Paiements"},
    "credit_notes": {"en": "Credit notes", "de": "Gutschriften", "fr": "Avoirs"},
    "error": {"en": "Something went wrong", "de": "Fehler", "fr": "Erreur"},
    "user_menu": {"en": "Account settings", "de": "Kontoeinstellungen", "fr": "Paramètres"},
}
"""Every text of the pages, per language (a test checks each has all three)."""

STATUS_KEYS = {"paid": "paid", "overdue": "overdue", "void": "void", "draft": "draft"}


def language_of(requested: str | None, accept_language: str | None = None) -> str:
    """The page language: the user's own if set, else the first of the browser's languages the
    pages are written in, else English."""
    if requested in LANGUAGES:
        return str(requested)
    for part in (accept_language or "").split(","):
        primary = part.split(";", 1)[0].strip().lower().split("-", 1)[0]
        if primary in LANGUAGES:
            return primary
    return DEFAULT


def translate(language: str, key: str, **values: object) -> str:
    """The text ``key`` in ``language`` (English when missing), with ``values`` filled in."""
    texts = MESSAGES[key]
    text = texts.get(language) or texts[DEFAULT]
    return text.format(**values) if values else text


def money(amount: str | Decimal | None, currency: str | None, language: str) -> str:
    """An amount in its currency for the page's language ('' when there is none)."""
    if amount is None or amount == "":
        return ""
    try:
        value = Decimal(amount)
    except InvalidOperation:
        return str(amount)
    if not currency:
        return str(format_decimal(value, locale=language))
    return str(format_currency(value, currency, locale=language))


def day(iso: str | None, language: str) -> str:
    """A date (``YYYY-MM-DD``) written for the page's language ('' when there is none)."""
    if not iso:
        return ""
    try:
        found = date.fromisoformat(iso[:10])
    except ValueError:
        return iso
    return str(format_date(found, "medium", locale=language))
