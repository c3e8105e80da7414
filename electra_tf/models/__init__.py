"""ELECTRA encoder, pretraining heads, the pretrainer, the fine-tuning models
(classifier, extractive QA, token tagging) and the model directories (`artifacts`)."""


from electra_tf.models.encoder import ElectraEmbeddings
from electra_tf.models.encoder import ElectraEncoder
from electra_tf.models.encoder import TransformerBlock
from electra_tf.models.encoder import attention_bias
from electra_tf.models.heads import MaskedLMHead
from electra_tf.models.heads import ReplacedTokenHead
from electra_tf.models.heads import gather_positions
from electra_tf.models.pretrainer import ElectraDiscriminator
from electra_tf.models.pretrainer import ElectraGenerator
from electra_tf.models.classifier import ElectraClassifier
from electra_tf.models.question_answering import ElectraForQuestionAnswering
from electra_tf.models.token_classification import ElectraForTokenClassification
# Last: it gives ElectraDiscriminator/ElectraGenerator from_model_dir and save_to_model_dir.
from electra_tf.models import artifacts
